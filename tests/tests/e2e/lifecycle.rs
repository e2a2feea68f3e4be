use crate::manifest;
use gateway_tests::process::{controlctl, TempDir};
use gateway_tests::{Client, Dataplane, DataplaneOptions, Origin};
use std::time::Duration;

#[test]
fn admin_endpoints() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    assert_eq!(dp.admin_get("/healthz"), (200, "ok\n".into()));
    assert_eq!(dp.admin_get("/readyz"), (200, "ready\n".into()));
    dp.client().get("localhost", "/one");
    let (status, metrics) = dp.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("gateway_table_version 1\n"), "{metrics}");
    assert!(metrics.contains("gateway_requests_total{shard=\"0\"}"));
    let driver = gateway_tests::process::io_driver();
    let expected = match driver.as_str() {
        "epoll" => "driver=\"epoll\"",
        _ => "driver=\"io_uring",
    };
    assert_eq!(metrics.matches(expected).count(), 2, "both shards run the requested driver:\n{metrics}");
    assert_eq!(dp.admin_get("/nope").0, 404);
}

#[test]
fn without_a_table_the_data_plane_is_live_but_not_ready() {
    let dp = Dataplane::start_with("", DataplaneOptions { no_table: true, ..DataplaneOptions::default() });
    assert_eq!(dp.admin_get("/healthz").0, 200);
    assert_eq!(dp.admin_get("/readyz").0, 503);
    let r = dp.client().get("localhost", "/anything");
    assert_eq!((r.status, r.text().as_str()), (503, r#"{"message":"Service Unavailable"}"#));
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let origin = Origin::start();
    let mut dp = Dataplane::start(&manifest(origin.addr));
    let addr = dp.addr;
    let mut idle = dp.client();
    assert_eq!(idle.get("localhost", "/one").text(), "one");
    let in_flight = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.get("localhost", "/echo/delay/1000")
    });
    std::thread::sleep(Duration::from_millis(300));
    dp.terminate();
    // The idle keep-alive connection is closed at once.
    idle.set_read_timeout(Duration::from_secs(2));
    assert!(idle.is_closed());
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request completed");
    assert_eq!(r.header("connection"), Some("close"));
    let status = dp.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

#[test]
fn a_port_in_use_is_an_error_not_a_silent_share() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("port");
    let table = gateway_tests::process::compile_table(&dir.0, "kind: Account\n");
    let out = std::process::Command::new(gateway_tests::process::bin("dataplane"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--admin", "127.0.0.1:0", "--table"])
        .arg(&table)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: listen address 127.0.0.1:{port}: Address already in use")),
        "{stderr}"
    );
}

#[test]
fn corrupt_table_files_are_refused_with_a_clear_error() {
    let dir = TempDir::new("corrupt");
    let origin = Origin::start();
    let table = gateway_tests::process::compile_table(&dir.0, &manifest(origin.addr));
    let mut bytes = std::fs::read(&table).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    std::fs::write(&table, &bytes).unwrap();
    let out = std::process::Command::new(gateway_tests::process::bin("dataplane"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--table"])
        .arg(&table)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt routing table"), "{stderr}");
    assert!(stderr.contains(&table.display().to_string()), "the file is named: {stderr}");
}

#[test]
fn controlctl_compile_reports_errors_and_exits_1() {
    let dir = TempDir::new("ctl");
    let yaml = dir.0.join("bad.yaml");
    std::fs::write(&yaml, "kind: Api\nname: a\nroutes:\n  GET /x:\n    integration: { type: HTTP_PROXY }\n---\nkind: Stage\napi: a\nname: s\n").unwrap();
    let out = dir.0.join("t.bin");
    let (code, _, stderr) =
        controlctl(&["compile", "-f", yaml.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!("error: {}:5: routes[\"GET /x\"].integration.uri: required for HTTP integrations\n1 error(s); nothing written\n", yaml.display())
    );
    assert!(!out.exists());
}

#[test]
fn corrupt_stored_state_is_reported_with_its_path_and_left_in_place() {
    let cases = [
        ("state.json", &b"{\"version\": 3, \"objects\": {"[..]),
        ("state.json", b"\x00\x01garbage"),
        ("usage.json", b"[1, 2"),
    ];
    for (file, content) in cases {
        let dir = TempDir::new("cp-corrupt");
        let path = dir.0.join(file);
        std::fs::write(&path, content).unwrap();
        let out = std::process::Command::new(gateway_tests::process::bin("controlplane"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir.0)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{file}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), content, "{file} was replaced");
    }
    // A data plane's persisted table: reported with its path and not served; the data plane
    // waits for its control plane instead.
    let state = TempDir::new("dp-corrupt");
    let table = state.0.join("table.bin");
    std::fs::write(&table, b"GWTABLE2 but not really").unwrap();
    let unreachable = gateway_tests::process::ControlPlaneLink {
        url: format!("https://127.0.0.1:{}", crate::dead_port()),
        ca: None,
        token_file: None,
        client_cert: None,
    };
    let dp = Dataplane::start_with(
        "",
        DataplaneOptions {
            control_plane: Some((unreachable, state.0.clone())),
            ..DataplaneOptions::default()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = dp.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ignoring persisted table") && l.contains(&table.display().to_string())),
        "{lines:?}"
    );
    assert_eq!(dp.admin_get("/readyz").0, 503);
}
