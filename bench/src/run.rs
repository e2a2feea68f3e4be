//! The load generator's modes. All run on one thread (one monoio runtime): open loop (steady,
//! ramp), a burst from idle, and closed loop (maximum throughput).
//!
//! Open loop follows wrk2's discipline: connection k sends requests k, k+C, k+2C, ... each at
//! its intended time from the [`Shape`], and latency is measured from that intended time, so a
//! stalled server shows up in the percentiles instead of silently slowing the generator
//! (coordinated omission). Timers have 1 ms resolution, so the last millisecond before a send
//! is waited by yielding; how late sends still left is reported as schedule lag.

use crate::client::Connection;
use crate::report::{Recorder, Report};
use crate::schedule::Shape;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub struct Target {
    pub addr: SocketAddr,
    pub request: Vec<u8>,
    pub timeout: Duration,
}

/// Yields once to the runtime (lets other connections and completions run).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Waits until `t` with sub-millisecond precision: the timer for all but the last
/// millisecond, then yielding.
async fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > Duration::from_millis(2) {
            monoio::time::sleep(left - Duration::from_millis(1)).await;
        } else {
            YieldNow(false).await;
        }
    }
}

/// Time allowed to open every connection before the schedule starts.
const CONNECT_GRACE: Duration = Duration::from_millis(200);

pub async fn open_loop(target: Rc<Target>, shape: Shape, connections: usize) -> Report {
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let total = shape.total();
    let busy_sends = Rc::new(Cell::new(0u64));
    let start = Instant::now() + CONNECT_GRACE;
    let mut tasks = Vec::new();
    for k in 0..connections as u64 {
        let (target, recorder, busy_sends) = (target.clone(), recorder.clone(), busy_sends.clone());
        tasks.push(monoio::spawn(async move {
            let mut conn = Connection::new(target.addr);
            conn.connect().await;
            let mut request = target.request.clone();
            let mut i = k;
            while i < total {
                let intended = start + shape.offset(i);
                let now = Instant::now();
                if now > intended + Duration::from_millis(1) {
                    // Still busy with the previous response: the server is slower than this
                    // connection's share of the rate.
                    busy_sends.set(busy_sends.get() + 1);
                }
                wait_until(intended).await;
                let sent = Instant::now();
                request = conn
                    .exchange(request, 1, target.timeout, |outcome| {
                        let done = Instant::now();
                        recorder.borrow_mut().record(
                            outcome,
                            done - intended,
                            done - sent,
                            sent - intended,
                            done.saturating_duration_since(start),
                        );
                    })
                    .await;
                i += connections as u64;
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let elapsed = Instant::now().saturating_duration_since(start).max(shape.duration());
    let recorder = Rc::try_unwrap(recorder).map(RefCell::into_inner).unwrap_or_default();
    let mut warnings = Vec::new();
    if busy_sends.get() > 0 {
        warnings.push(format!(
            "{} request(s) found their connection still busy at their send time (their wait counts in latency); \
             with more --connections the offered load stays open",
            busy_sends.get()
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

/// `requests` sent at once from idle: every connection is opened first, then each writes its
/// share pipelined in one write at the same instant.
pub async fn burst(target: Rc<Target>, requests: u64, connections: usize) -> Report {
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let mut conns = Vec::new();
    for _ in 0..connections {
        let mut c = Connection::new(target.addr);
        c.connect().await;
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        let share = requests / connections as u64 + u64::from((k as u64) < requests % connections as u64);
        let (target, recorder) = (target.clone(), recorder.clone());
        tasks.push(monoio::spawn(async move {
            if share == 0 {
                return;
            }
            wait_until(start).await;
            let sent = Instant::now();
            conn.exchange(target.request.clone(), share as usize, target.timeout, |outcome| {
                let done = Instant::now();
                recorder.borrow_mut().record(outcome, done - start, done - sent, sent - start, done - start);
            })
            .await;
        }));
    }
    for t in tasks {
        t.await;
    }
    let elapsed = Instant::now() - start;
    let recorder = Rc::try_unwrap(recorder).map(RefCell::into_inner).unwrap_or_default();
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
pub async fn closed_loop(target: Rc<Target>, duration: Duration, connections: usize) -> Report {
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let start = Instant::now() + CONNECT_GRACE;
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, recorder) = (target.clone(), recorder.clone());
        tasks.push(monoio::spawn(async move {
            let mut conn = Connection::new(target.addr);
            conn.connect().await;
            wait_until(start).await;
            let mut request = target.request.clone();
            while Instant::now() < end {
                let sent = Instant::now();
                request = conn
                    .exchange(request, 1, target.timeout, |outcome| {
                        let done = Instant::now();
                        recorder.borrow_mut().record(
                            outcome,
                            done - sent,
                            done - sent,
                            Duration::ZERO,
                            done - start,
                        );
                    })
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let elapsed = Instant::now() - start;
    let recorder = Rc::try_unwrap(recorder).map(RefCell::into_inner).unwrap_or_default();
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
