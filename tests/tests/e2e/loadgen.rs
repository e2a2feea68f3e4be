//! The load generator's own correctness, against the bench origin: it sends exactly its
//! schedule, counts every outcome, and a server stall shows in its latency percentiles
//! (no coordinated omission).

use gateway_tests::process::{bin, TempDir};
use std::process::{Command, Stdio};

fn origin(args: &[&str]) -> (std::process::Child, u16) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(bin("origin"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--body-bytes", "32"])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (child, port)
}

fn run(args: &[&str]) -> serde_json::Value {
    let dir = TempDir::new("loadgen");
    let json = dir.0.join("report.json");
    let out = Command::new(bin("bench")).args(args).arg("--json").arg(&json).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn open_loop_sends_exactly_its_schedule_and_sees_a_stall() {
    let (mut child, port) = origin(&["--stall-every-ms", "1000", "--stall-ms", "100"]);
    let url = format!("http://127.0.0.1:{port}/x");
    let r = run(&["steady", "--rate", "2000", "--duration", "2", "--connections", "32", &url]);
    let _ = child.kill();
    assert_eq!(r["scheduled"], 4000);
    assert_eq!(r["completed"], 4000);
    assert_eq!(r["status"]["2xx"], 4000);
    // 10% of the time the server is stalled for 100 ms: measured from the intended send time
    // that is visible at p99; measured from the actual send, a blocked connection hides it.
    let p99 = r["latency_us"]["p99"].as_u64().unwrap();
    assert!(p99 >= 50_000, "a 100 ms stall is invisible: p99 {p99} us");
    let per_second: u64 =
        r["per_second"].as_array().unwrap().iter().map(|s| s["completed"].as_u64().unwrap()).sum();
    assert_eq!(per_second, 4000);
}

#[test]
fn burst_and_closed_loop_count_every_request() {
    let (mut child, port) = origin(&[]);
    let url = format!("http://127.0.0.1:{port}/x");
    let burst = run(&["burst", "--requests", "3001", "--connections", "50", &url]);
    assert_eq!((burst["scheduled"].as_u64(), burst["status"]["2xx"].as_u64()), (Some(3001), Some(3001)));
    let max = run(&["max", "--duration", "1", "--connections", "4", &url]);
    let _ = child.kill();
    assert!(max["completed"].as_u64().unwrap() > 100);
    assert_eq!(max["completed"], max["status"]["2xx"]);
    // Nothing listens here: every request is an error, none hangs.
    let dead = run(&[
        "steady",
        "--rate",
        "100",
        "--duration",
        "0.5",
        "--connections",
        "2",
        &format!("http://127.0.0.1:{}/x", crate::dead_port()),
    ]);
    assert_eq!((dead["completed"].as_u64(), dead["status"]["errors"].as_u64()), (Some(50), Some(50)));
}
