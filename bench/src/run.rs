//! The load generator's modes: open loop (steady, ramp), a burst from idle, and closed loop
//! (maximum throughput). Each connection is a blocking socket on its own thread, all pinned to
//! the generator's core, each with its own [`Recorder`] (merged at the end: no lock is shared
//! while the load runs).
//!
//! Open loop follows wrk2's discipline: connection k sends requests k, k+C, k+2C, ... each at
//! its intended time from the [`Shape`], and latency is measured from that intended time, so a
//! stalled server shows up in the percentiles instead of silently slowing the generator
//! (coordinated omission). Schedule lag is the generator's own lateness: how long after it
//! could have sent a request it did.

use crate::client::Connection;
use crate::pace;
use crate::report::{Recorder, Report};
use crate::schedule::Shape;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub struct Target {
    pub addr: SocketAddr,
    /// The encoded requests: one, or one per key of a key set.
    pub requests: Vec<Vec<u8>>,
    /// Which request the i-th one sent is (cycled); empty: always the first.
    pub sequence: Vec<u32>,
    pub timeout: Duration,
}

impl Target {
    /// The bytes of the `i`-th request of the run.
    fn request(&self, i: u64) -> &[u8] {
        if self.sequence.is_empty() {
            return &self.requests[0];
        }
        let k = self.sequence[(i % self.sequence.len() as u64) as usize];
        &self.requests[k as usize]
    }
}

/// Time allowed to start every thread and open every connection before the schedule starts.
const START_GRACE: Duration = Duration::from_millis(300);

/// Runs `work(k, connection, recorder)` on one thread per connection and merges the results.
fn on_threads(
    target: &Target,
    connections: usize,
    work: impl Fn(usize, &mut Connection, &mut Recorder) -> u64 + Sync,
) -> (Recorder, u64) {
    let mut merged = Recorder::default();
    let mut flagged = 0;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|k| {
                let work = &work;
                scope.spawn(move || {
                    pace::precise_timers();
                    let mut conn = Connection::new(target.addr, target.timeout);
                    conn.connect();
                    let mut recorder = Recorder::default();
                    let flagged = work(k, &mut conn, &mut recorder);
                    (recorder, flagged)
                })
            })
            .collect();
        for h in handles {
            if let Ok((r, f)) = h.join() {
                merged.merge(&r);
                flagged += f;
            }
        }
    });
    (merged, flagged)
}

pub fn open_loop(target: &Target, shape: Shape, connections: usize) -> Report {
    let total = shape.total();
    let start = Instant::now() + START_GRACE;
    let step = connections as u64;
    let (recorder, busy_sends) = on_threads(target, connections, |k, conn, recorder| {
        let mut busy = 0;
        let mut i = k as u64;
        while i < total {
            let intended = start + shape.offset(i);
            let ready = Instant::now();
            if ready > intended + Duration::from_millis(1) {
                // Still busy with the previous response: the server is slower than this
                // connection's share of the rate.
                busy += 1;
            }
            pace::sleep_until(intended);
            let sent = Instant::now();
            // The generator's own lateness: from when it could have sent (the schedule, or the
            // previous response if that came later) to when it did.
            let lag = pace::lateness(intended.max(ready), sent);
            conn.exchange(target.request(i), 1, |outcome| {
                let done = Instant::now();
                let at = done.saturating_duration_since(start);
                recorder.record(outcome, done - intended, done - sent, lag, at);
            });
            i += step;
        }
        busy
    });
    let elapsed = Instant::now().saturating_duration_since(start).max(shape.duration());
    let mut warnings = Vec::new();
    if busy_sends > 0 {
        warnings.push(format!(
            "{busy_sends} request(s) found their connection still busy at their send time (their wait counts in \
             latency); with more --connections the offered load stays open"
        ));
    }
    let lag_p99 = recorder.lag.value_at_quantile(0.99);
    if lag_p99 > 1_000 {
        warnings.push(format!("the generator fell behind its schedule: send lag p99 {lag_p99} us"));
    }
    let (mode, rate) = match shape {
        Shape::Steady { rate, .. } => ("steady".to_string(), Some(rate)),
        Shape::Ramp { from, to, .. } => (format!("ramp {from:.0}/s -> {to:.0}/s"), None),
    };
    Report { mode, target_rate: rate, scheduled: total, elapsed, connections, recorder, warnings }
}

/// `requests` sent at once from idle: every connection is opened first, then all threads
/// write their share, pipelined in one write each, at the same instant.
pub fn burst(target: &Target, requests: u64, connections: usize) -> Report {
    let barrier = Arc::new(Barrier::new(connections));
    let start = std::sync::OnceLock::new();
    let (recorder, _) = on_threads(target, connections, |k, conn, recorder| {
        let share = requests / connections as u64 + u64::from((k as u64) < requests % connections as u64);
        // Connected (in on_threads) before anyone fires.
        barrier.wait();
        let t0 = *start.get_or_init(|| Instant::now() + Duration::from_millis(20));
        pace::sleep_until(t0);
        let sent = Instant::now();
        if share > 0 {
            // Pipelined copies of one request: a key set applies to the paced modes only.
            conn.exchange(target.request(0), share as usize, |outcome| {
                let done = Instant::now();
                recorder.record(outcome, done - t0, done - sent, pace::lateness(t0, sent), done - t0);
            });
        }
        0
    });
    let t0 = start.get().copied().unwrap_or_else(Instant::now);
    let elapsed = Instant::now() - t0;
    Report {
        mode: format!("burst of {requests}"),
        target_rate: None,
        scheduled: requests,
        elapsed,
        connections,
        recorder,
        warnings: vec![],
    }
}

/// Closed loop: every connection sends its next request as soon as the previous one returns.
pub fn closed_loop(target: &Target, duration: Duration, connections: usize) -> Report {
    let start = Instant::now() + START_GRACE;
    let end = start + duration;
    let (recorder, _) = on_threads(target, connections, |k, conn, recorder| {
        pace::sleep_until(start);
        // Connection k walks the key sequence from its own offset, so together the
        // connections send the sequence's mix.
        let mut i = (k as u64).wrapping_mul(7919);
        while Instant::now() < end {
            let sent = Instant::now();
            i += 1;
            conn.exchange(target.request(i), 1, |outcome| {
                let done = Instant::now();
                recorder.record(outcome, done - sent, done - sent, Duration::ZERO, done - start);
            });
        }
        0
    });
    let elapsed = Instant::now() - start;
    let scheduled = recorder.completed();
    Report {
        mode: "closed loop".into(),
        target_rate: None,
        scheduled,
        elapsed,
        connections,
        recorder,
        warnings: vec![],
    }
}
