//! Access logs: every `$context` variable a format names has the request's value, the JSON
//! preset is JSON, SIGHUP reopens the files (after a rotation), and a file that cannot be
//! written costs requests nothing and counts its lines as dropped.

use gateway_tests::process::TempDir;
use gateway_tests::{Dataplane, DataplaneOptions, Origin};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "log-key-0123456789abcdef";

const ALL: &str = "$context.requestId|$context.identity.sourceIp|$context.identity.userAgent|\
$context.identity.apiKeyId|$context.httpMethod|$context.path|$context.resourcePath|$context.routeKey|\
$context.stage|$context.apiId|$context.domainName|$context.protocol|$context.status|\
$context.responseLength|$context.responseLatency|$context.integrationLatency|\
$context.integrationStatus|$context.requestTime|$context.requestTimeEpoch|$context.xrayTraceId|\
$context.error.responseType|$context.error.message";

fn manifest(origin: SocketAddr, second_destination: &str) -> String {
    format!(
        "kind: Api\nname: a\nroutes:\n  \
         GET /mock:\n    integration: {{ type: MOCK, response: {{ body: hello }} }}\n  \
         GET /proxied/{{id}}:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{origin}/status/201\" }}\n  \
         GET /keyed:\n    apiKeyRequired: true\n    integration: {{ type: MOCK, response: {{ body: k }} }}\n  \
         GET /limited:\n    integration: {{ type: MOCK }}\n    throttle: {{ rate: 0.01, burst: 1 }}\n\
         ---\nkind: Stage\napi: a\nname: s\naccessLog: {{ destination: s.log, format: '{ALL}' }}\n\
         ---\nkind: Stage\napi: a\nname: j\naccessLog: {{ destination: {second_destination}, format: JSON }}\n\
         ---\nkind: Domain\nname: 127.0.0.1\nmappings:\n  - {{ basePath: \"\", api: a, stage: s }}\n  - {{ basePath: \"j\", api: a, stage: j }}\n\
         ---\nkind: UsagePlan\nname: p\nstages: [a/s]\n---\nkind: ApiKey\nname: logger\nplan: p\nvalue: {KEY}\n"
    )
}

/// A data plane writing its access logs into `dir`.
fn start(manifest: &str, dir: &Path) -> Dataplane {
    let extra_args = vec!["--access-log-dir".to_string(), dir.display().to_string()];
    Dataplane::start_with(manifest, DataplaneOptions { extra_args, ..DataplaneOptions::default() })
}

/// The file's lines once it has `n` (shards hand lines over every 100 ms).
fn read_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lines_carry_the_context_variables_of_their_request() {
    let origin = Origin::start();
    let dir = TempDir::new("access-log");
    let json_log = dir.0.join("j.log");
    let dp = start(&manifest(origin.addr, "j.log"), &dir.0);
    let mut client = dp.client();
    let send = |client: &mut gateway_tests::Client, target: &str, extra: &str| {
        client.request(&format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t/1 \"q\"\r\n{extra}\r\n"
        ))
    };
    let mock = send(&mut client, "/mock?x=1", "");
    let proxied = send(&mut client, "/proxied/7", "");
    let keyed = send(&mut client, "/keyed", &format!("x-api-key: {KEY}\r\n"));
    let unknown = send(&mut client, "/nope", "");
    let allowed = send(&mut client, "/limited", "");
    let throttled = send(&mut client, "/limited", "");
    let json = send(&mut client, "/j/mock", "x-amzn-trace-id: Root=1-abc-def\r\n");
    assert_eq!((proxied.status, unknown.status, allowed.status, throttled.status), (201, 403, 200, 429));

    let lines = read_lines(&dir.0.join("s.log"), 6);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('|').collect()).collect();
    let responses = [&mock, &proxied, &keyed, &unknown, &allowed, &throttled];
    let epoch_now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for (f, r) in fields.iter().zip(responses) {
        assert_eq!(f.len(), 22, "{f:?}");
        assert_eq!(f[0], r.header("x-amzn-RequestId").unwrap(), "requestId");
        assert_eq!(f[1], "127.0.0.1");
        assert_eq!(f[2], "t/1 \\\"q\\\"", "quotes are escaped");
        assert_eq!(f[4], "GET");
        assert_eq!((f[8], f[9], f[10], f[11]), ("s", "a", "127.0.0.1", "HTTP/1.1"));
        assert_eq!(f[12], r.status.to_string());
        assert_eq!(f[13], r.body.len().to_string(), "responseLength");
        assert!(f[14].parse::<u64>().unwrap() < 1000, "responseLatency in ms");
        assert_eq!(f[17].len(), 26, "requestTime {}", f[17]);
        let epoch: u64 = f[18].parse().unwrap();
        assert!(epoch <= epoch_now && epoch_now - epoch < 60_000, "requestTimeEpoch {epoch}");
        assert!(f[19].starts_with("Root=1-") && f[19].len() == 40, "generated xrayTraceId {}", f[19]);
    }
    // Per request: path, resource, route, key, integration, error.
    let expect = |i: usize, path: &str, resource: &str, route: &str, key: &str| {
        assert_eq!(
            (fields[i][5], fields[i][6], fields[i][7], fields[i][3]),
            (path, resource, route, key),
            "line {i}"
        );
    };
    expect(0, "/mock", "/mock", "GET /mock", "-");
    expect(1, "/proxied/7", "/proxied/{id}", "GET /proxied/{id}", "-");
    expect(2, "/keyed", "/keyed", "GET /keyed", "logger");
    expect(3, "/nope", "-", "-", "-");
    assert_eq!((fields[0][15], fields[0][16]), ("-", "-"), "MOCK calls no integration");
    assert!(fields[1][15].parse::<u64>().is_ok());
    assert_eq!(fields[1][16], "201", "integrationStatus");
    assert_eq!((fields[0][20], fields[0][21]), ("-", "-"));
    assert_eq!(
        (fields[3][20], fields[3][21]),
        ("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
    );
    assert_eq!((fields[5][20], fields[5][21]), ("THROTTLED", "Too Many Requests"));

    // The JSON preset parses, and a client's X-Amzn-Trace-Id is kept.
    let json_lines = read_lines(&json_log, 1);
    let line: serde_json::Value = serde_json::from_str(&json_lines[0]).unwrap();
    assert_eq!(line["requestId"], json.header("x-amzn-RequestId").unwrap());
    assert_eq!((line["status"].as_str(), line["routeKey"].as_str()), (Some("200"), Some("GET /mock")));
    assert_eq!(line["xrayTraceId"], "Root=1-abc-def");
    assert_eq!(line["ip"], "127.0.0.1");
    let (_, text) = dp.admin_get("/metrics");
    assert!(text.contains("gateway_access_log_lines_total 7\n"), "{text}");
    assert!(text.contains("gateway_access_log_dropped_total 0\n"));
}

#[test]
fn sighup_reopens_the_files_and_an_unwritable_one_drops_lines() {
    let origin = Origin::start();
    let dir = TempDir::new("access-log-rotate");
    // Stage j's file is a directory: it cannot be opened for writing.
    std::fs::create_dir(dir.0.join("j.log")).unwrap();
    let dp = start(&manifest(origin.addr, "j.log"), &dir.0);
    let log = dir.0.join("s.log");
    let mut client = dp.client();
    for _ in 0..3 {
        assert_eq!(client.get("127.0.0.1", "/mock").status, 200);
    }
    assert_eq!(read_lines(&log, 3).len(), 3);
    // logrotate: move the file away, then SIGHUP.
    std::fs::rename(&log, dir.0.join("s.log.1")).unwrap();
    dp.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..2 {
        assert_eq!(client.get("127.0.0.1", "/mock").status, 200);
    }
    assert_eq!(read_lines(&log, 2).len(), 2, "new lines go to a new file");
    assert_eq!(std::fs::read_to_string(dir.0.join("s.log.1")).unwrap().lines().count(), 3);
    // Stage j's log cannot be written: served all the same, lines dropped.
    for _ in 0..4 {
        assert_eq!(client.get("127.0.0.1", "/j/mock").status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = dp.admin_get("/metrics");
        if text.contains("gateway_access_log_dropped_total 4\n") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = dir.0.join("j.log").display().to_string();
    assert!(dp.stderr_lines().iter().any(|l| l.contains(&file)), "one warning names the file");
    // A clean stop writes every line, even those of the last moment.
    for _ in 0..3 {
        assert_eq!(client.get("127.0.0.1", "/mock").status, 200);
    }
    drop(client);
    let mut dp = dp;
    dp.terminate();
    assert!(dp.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 5);
}

#[test]
fn a_manifest_cannot_make_a_data_plane_write_outside_its_log_directory() {
    let origin = Origin::start();
    let dir = TempDir::new("access-log-escape");
    // Paths of any kind are refused when the manifest is compiled, with the field located.
    for destination in ["/tmp/x.log", "../x.log", "sub/x.log", ".ssh", "authorized_keys/"] {
        let (code, err, _) = gateway_tests::process::compile_result(
            &dir.0,
            &manifest(origin.addr, &format!("'{destination}'")),
        );
        assert_eq!(code, 1, "{destination} was accepted");
        assert!(err.contains("accessLog.destination") && err.contains("is not a file name"), "{err}");
    }
    // A symbolic link planted in the directory is not followed: its target stays untouched and
    // the lines are dropped.
    let logs = dir.0.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let target = dir.0.join("authorized_keys");
    std::fs::write(&target, "ssh-ed25519 AAAA owner\n").unwrap();
    std::os::unix::fs::symlink(&target, logs.join("j.log")).unwrap();
    let dp = start(&manifest(origin.addr, "j.log"), &logs);
    let mut client = dp.client();
    for _ in 0..3 {
        assert_eq!(client.get("127.0.0.1", "/j/mock").status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dp.admin_get("/metrics").1.contains("gateway_access_log_dropped_total 3\n") {
        assert!(Instant::now() < deadline, "the lines were not dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "ssh-ed25519 AAAA owner\n");
    // The other stage's file is created inside the directory.
    assert_eq!(client.get("127.0.0.1", "/mock").status, 200);
    assert_eq!(read_lines(&logs.join("s.log"), 1).len(), 1);
}
