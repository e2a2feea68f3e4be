//! When each request of an open-loop run is meant to be sent. Pure: request index in, offset
//! from the start out, so the schedule is exact and testable without a clock.

use std::time::Duration;

/// The shape of an open-loop run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `rate` requests per second for `duration`.
    Steady { rate: f64, duration: Duration },
    /// Rate rising linearly from `from` to `to` over `duration`.
    Ramp { from: f64, to: f64, duration: Duration },
}

impl Shape {
    pub fn duration(&self) -> Duration {
        match *self {
            Shape::Steady { duration, .. } | Shape::Ramp { duration, .. } => duration,
        }
    }

    /// How many requests the whole run sends.
    pub fn total(&self) -> u64 {
        let d = self.duration().as_secs_f64();
        let n = match *self {
            Shape::Steady { rate, .. } => rate * d,
            Shape::Ramp { from, to, .. } => (from + to) / 2.0 * d,
        };
        // A hair of tolerance so that 10,000/s for 1 s is 10,000, not 9,999 after rounding.
        (n + 1e-6).floor() as u64
    }

    /// The intended send time of request `i` (0-based), as an offset from the start.
    pub fn offset(&self, i: u64) -> Duration {
        let i = i as f64;
        let secs = match *self {
            Shape::Steady { rate, .. } => i / rate,
            Shape::Ramp { from, to, duration } => {
                // Requests sent by time t: from*t + (to-from)*t^2/(2d) = i; solve for t.
                let d = duration.as_secs_f64();
                let a = (to - from) / (2.0 * d);
                if a.abs() < 1e-12 {
                    i / from
                } else {
                    (-from + (from * from + 4.0 * a * i).sqrt()) / (2.0 * a)
                }
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_schedule_is_exact() {
        let s = Shape::Steady { rate: 10_000.0, duration: Duration::from_secs(30) };
        assert_eq!(s.total(), 300_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(10_000), Duration::from_secs(1));
        assert_eq!(s.offset(1), Duration::from_micros(100));
    }

    #[test]
    fn ramp_sends_the_area_under_the_rate() {
        let s = Shape::Ramp { from: 1_000.0, to: 3_000.0, duration: Duration::from_secs(10) };
        assert_eq!(s.total(), 20_000);
        // The last request is sent just before the end. The rate rises, so the first half of
        // the requests takes more than half the time: 1000 t + 100 t^2 = 10,000 at t = 6.18 s.
        assert!(s.offset(19_999) <= Duration::from_secs(10));
        let half = s.offset(10_000).as_secs_f64();
        assert!((half - 6.180).abs() < 0.001, "{half}");
        let flat = Shape::Ramp { from: 500.0, to: 500.0, duration: Duration::from_secs(2) };
        assert_eq!(flat.offset(500), Duration::from_secs(1));
    }
}
