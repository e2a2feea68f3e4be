//! Memory exhaustion by unauthenticated clients and by a backend (issue 18, item 5): the
//! attacks run against a real data plane, and its resident memory, sampled while they run,
//! stays within the shard's memory limit plus what one response in flight needs.

use crate::{manifest, read_metric};
use gateway_tests::{Dataplane, DataplaneOptions, Origin};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: u64 = 16 << 20;
/// Allocator pages, thread stacks and buffers below the budget's notice, beyond the limit.
const SLACK: u64 = 32 << 20;
const OVERLOADED: &str = r#"{"message":"Service Unavailable"}"#;

fn one_shard(origin: &Origin, limit: Option<u64>) -> Dataplane {
    let extra_args = match limit {
        Some(limit) => vec!["--shard-memory-limit-bytes".into(), limit.to_string()],
        None => Vec::new(),
    };
    let options = DataplaneOptions { shards: 1, extra_args, ..DataplaneOptions::default() };
    Dataplane::start_with(&manifest(origin.addr), options)
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS kB");
    kb * 1024
}

/// The highest resident memory of a process, sampled every 5 ms until dropped.
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let (peak, stop) = (Arc::new(AtomicU64::new(rss(pid))), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(SeqCst) {
                p.fetch_max(rss(pid), SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        PeakRss { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(SeqCst)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

/// Warms the paths the attack uses, so what they allocate once is not counted as growth.
fn warm(dp: &Dataplane) {
    let mut c = dp.client();
    assert_eq!(c.get("localhost", "/echo/bytes/100").status, 200);
    let body = vec![b'w'; 200_000];
    let head =
        format!("POST /echo/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    c.send(head.as_bytes());
    c.send(&body);
    assert_eq!(c.read_response().expect("response").status, 200);
}

/// What a connection received within a short wait (empty when the server is still reading).
fn received(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn bodies_dripped_by_many_clients_stay_within_the_shards_memory_limit() {
    let origin = Origin::start();
    let dp = one_shard(&origin, Some(LIMIT));
    warm(&dp);
    let before = rss(dp.child.id());
    let watch = PeakRss::watch(dp.child.id());
    // 100 clients each announce a 10 MB body and send 1 MB of it: 100 MB if all were kept.
    let chunk = vec![b'a'; 64 * 1024];
    let mut attackers = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(dp.addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let head = "POST /echo/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n";
        let mut sent = s.write_all(head.as_bytes()).is_ok();
        for _ in 0..16 {
            sent = sent && s.write_all(&chunk).is_ok();
        }
        attackers.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    // A small request still gets through while the budget is taken.
    assert_eq!(dp.client().get("localhost", "/health").status, 200);
    let buffered = read_metric(&dp, "gateway_memory_buffered_bytes", &[]);
    let refusals = read_metric(&dp, "gateway_memory_refusals_total", &[]);
    let peak = watch.peak();
    // Past the limit only by the first small read buffer of each connection, never refused.
    assert!(buffered <= LIMIT + 100 * 4096, "the shard buffers {buffered} bytes, past its limit of {LIMIT}");
    assert!(refusals > 0, "no client was refused, yet 100 MB were sent");
    assert!(
        peak - before < LIMIT + SLACK,
        "resident memory grew by {} MB under a {} MB limit",
        (peak - before) >> 20,
        LIMIT >> 20
    );
    let refused = attackers.iter_mut().map(received).filter(|r| r.starts_with("HTTP/1.1 503 ")).count();
    assert!(refused > 0, "no client read a 503");
    let one = attackers.iter_mut().map(received).find(|r| r.contains("503")).unwrap_or_default();
    assert!(one.is_empty() || one.ends_with(OVERLOADED), "{one}");

    // Once the attackers are gone, their memory is given back and a large body goes through.
    drop(attackers);
    std::thread::sleep(Duration::from_millis(700));
    let left = read_metric(&dp, "gateway_memory_buffered_bytes", &[]);
    assert!(left < 256 * 1024, "{left} bytes still charged after every attacker left");
    let mut c = dp.client();
    let body = vec![b'b'; 4_000_000];
    c.send(
        format!("POST /echo/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    );
    c.send(&body);
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.json()["length"].as_u64()), (200, Some(4_000_000)));
}

#[test]
fn a_client_that_never_reads_holds_at_most_one_response_more() {
    let origin = Origin::start();
    let dp = one_shard(&origin, None);
    warm(&dp);
    let before = rss(dp.child.id());
    let watch = PeakRss::watch(dp.child.id());
    // Ten clients pipeline 50 requests for 1 MB each and read nothing: without backpressure
    // a shard would fetch every request in its read buffer, about 30 MB per client.
    let requests = "GET /echo/bytes/1048576 HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(50);
    let mut clients: Vec<_> = (0..10).map(|_| dp.client()).collect();
    for c in &mut clients {
        c.send(requests.as_bytes());
    }
    std::thread::sleep(Duration::from_millis(1500));
    let fetched = origin.requests();
    let peak = watch.peak();
    assert!(
        peak - before < 64 << 20,
        "resident memory grew by {} MB for ten clients that do not read",
        (peak - before) >> 20
    );
    assert!(fetched < 10 * 15, "{fetched} responses fetched for clients that read none");
    // Nothing is lost: each client, once it reads, gets all 50 answers in order.
    for c in &mut clients {
        for _ in 0..50 {
            let r = c.read_response().expect("a response");
            assert_eq!((r.status, r.body.len()), (200, 1_048_576));
        }
    }
}

#[test]
fn large_upstream_responses_stay_within_the_shards_memory_limit() {
    let origin = Origin::start();
    let dp = one_shard(&origin, Some(LIMIT));
    warm(&dp);
    let before = rss(dp.child.id());
    let watch = PeakRss::watch(dp.child.id());
    // Twenty clients at once ask for 6 MB each: 240 MB buffered if every exchange ran.
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let mut c = dp.client();
            std::thread::spawn(move || {
                let r = c.get("localhost", "/echo/bytes/6000000");
                (r.status, r.body.len(), r.text())
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|t| t.join().expect("client")).collect();
    let peak = watch.peak();
    let ok = answers.iter().filter(|(status, len, _)| *status == 200 && *len == 6_000_000).count();
    let refused = answers.iter().filter(|(status, _, body)| *status == 503 && body == OVERLOADED).count();
    assert_eq!(
        ok + refused,
        20,
        "each answer is the whole body or a 503: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(ok > 0 && refused > 0, "{ok} answered, {refused} refused");
    assert!(
        peak - before < LIMIT + 6_000_000 + SLACK,
        "resident memory grew by {} MB under a {} MB limit",
        (peak - before) >> 20,
        LIMIT >> 20
    );
    assert_eq!(read_metric(&dp, "gateway_memory_refusals_total", &[]), refused as u64);
}
