//! What a run measured: latency histograms (HDR, microseconds), counts by outcome, and a
//! per-second series; printed as a table or written as JSON.

use crate::client::Outcome;
use hdrhistogram::Histogram;
use serde_json::json;
use std::time::Duration;

pub struct Recorder {
    /// From the intended send time to the response: what a user waits, including any queueing
    /// the generator itself could not avoid (no coordinated omission).
    pub latency: Histogram<u64>,
    /// From the actual send to the response.
    pub service: Histogram<u64>,
    /// How late the generator sent requests it was free to send (its own timing error).
    pub lag: Histogram<u64>,
    pub ok_2xx: u64,
    pub redirect_3xx: u64,
    pub throttled_429: u64,
    pub client_4xx: u64,
    pub server_5xx: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Per second of the run: (completed, 2xx, 429).
    pub per_second: Vec<(u64, u64, u64)>,
}

impl Default for Recorder {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        Recorder {
            latency: h(),
            service: h(),
            lag: h(),
            ok_2xx: 0,
            redirect_3xx: 0,
            throttled_429: 0,
            client_4xx: 0,
            server_5xx: 0,
            errors: 0,
            timeouts: 0,
            per_second: Vec::new(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 60_000_000)
}

impl Recorder {
    /// Records one request: `at` is when it completed, relative to the start of the run.
    pub fn record(
        &mut self,
        outcome: Outcome,
        latency: Duration,
        service: Duration,
        lag: Duration,
        at: Duration,
    ) {
        let second = at.as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, (0, 0, 0));
        }
        let slot = &mut self.per_second[second];
        slot.0 += 1;
        match outcome {
            Outcome::Status(s) if (200..300).contains(&s) => {
                self.ok_2xx += 1;
                slot.1 += 1;
            }
            Outcome::Status(429) => {
                self.throttled_429 += 1;
                slot.2 += 1;
            }
            Outcome::Status(s) if (300..400).contains(&s) => self.redirect_3xx += 1,
            Outcome::Status(s) if (400..500).contains(&s) => self.client_4xx += 1,
            Outcome::Status(_) => self.server_5xx += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
        let _ = self.latency.record(micros(latency));
        let _ = self.service.record(micros(service));
        let _ = self.lag.record(micros(lag));
    }

    /// Adds another thread's measurements.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
        self.ok_2xx += other.ok_2xx;
        self.redirect_3xx += other.redirect_3xx;
        self.throttled_429 += other.throttled_429;
        self.client_4xx += other.client_4xx;
        self.server_5xx += other.server_5xx;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), (0, 0, 0));
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
            mine.2 += theirs.2;
        }
    }

    pub fn completed(&self) -> u64 {
        self.ok_2xx
            + self.redirect_3xx
            + self.throttled_429
            + self.client_4xx
            + self.server_5xx
            + self.errors
            + self.timeouts
    }
}

/// A finished run.
pub struct Report {
    pub mode: String,
    pub target_rate: Option<f64>,
    pub scheduled: u64,
    pub elapsed: Duration,
    pub connections: usize,
    pub recorder: Recorder,
    /// Set when the generator could not keep its schedule.
    pub warnings: Vec<String>,
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": h.mean(),
    })
}

impl Report {
    pub fn achieved_rate(&self) -> f64 {
        self.recorder.completed() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.recorder;
        json!({
            "mode": self.mode,
            "target_rate": self.target_rate,
            "scheduled": self.scheduled,
            "completed": r.completed(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "achieved_rate": self.achieved_rate(),
            "connections": self.connections,
            "status": {
                "2xx": r.ok_2xx, "3xx": r.redirect_3xx, "429": r.throttled_429,
                "4xx": r.client_4xx, "5xx": r.server_5xx, "errors": r.errors, "timeouts": r.timeouts,
            },
            "latency_us": percentiles(&r.latency),
            "service_us": percentiles(&r.service),
            "schedule_lag_us": percentiles(&r.lag),
            "per_second": r.per_second.iter().map(|(c, ok, t)| json!({"completed": c, "2xx": ok, "429": t})).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    pub fn print(&self) {
        let r = &self.recorder;
        println!("mode            {}", self.mode);
        if let Some(rate) = self.target_rate {
            println!("target rate     {rate:.0}/s");
        }
        println!(
            "requests        {} scheduled, {} completed in {:.3} s ({:.1}/s) over {} connection(s)",
            self.scheduled,
            r.completed(),
            self.elapsed.as_secs_f64(),
            self.achieved_rate(),
            self.connections
        );
        println!(
            "status          2xx {}  3xx {}  429 {}  other 4xx {}  5xx {}  errors {}  timeouts {}",
            r.ok_2xx, r.redirect_3xx, r.throttled_429, r.client_4xx, r.server_5xx, r.errors, r.timeouts
        );
        println!("                 p50      p90      p99    p99.9      max   (microseconds)");
        for (name, h) in [("latency", &r.latency), ("service", &r.service), ("schedule lag", &r.lag)] {
            println!(
                "{name:<13} {:>8} {:>8} {:>8} {:>8} {:>8}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        for w in &self.warnings {
            println!("warning: {w}");
        }
    }
}
