use crate::manifest;
use gateway_tests::{Client, Dataplane, DataplaneOptions, Origin};
use std::time::{Duration, Instant};

#[test]
fn keep_alive_and_pipelined_requests_answer_in_order() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    // Mixed MOCK and proxied requests in one write: answered in order on one connection.
    c.send(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /pets/5 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response().unwrap().text(), "one");
    assert_eq!(c.read_response().unwrap().json()["target"], "/pets/5");
    assert_eq!(c.read_response().unwrap().text(), "two");
    for _ in 0..20 {
        assert_eq!(c.get("localhost", "/one").text(), "one");
    }
    let r = c.request("GET /one HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn every_response_has_a_request_id_and_date() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let a = c.get("localhost", "/health");
    let b = c.get("localhost", "/nope");
    let ida = a.header("x-amzn-RequestId").unwrap().to_string();
    let idb = b.header("x-amzn-RequestId").unwrap().to_string();
    assert_eq!(ida.len(), 36);
    assert_ne!(ida, idb);
    assert!(a.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(a.header("x-mock"), Some("1"));
}

#[test]
fn http10_clients() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let r = c.request("GET /one HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "one"));
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive closes");
    let mut c = dp.client();
    let r = c.request("GET /one HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(
        c.request("GET /two HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n").text(),
        "two"
    );
    // HTTP/1.0 needs no Host; with none the request cannot be mapped to an API.
    let mut c = dp.client();
    assert_eq!(c.request("GET /one HTTP/1.0\r\n\r\n").status, 403);
}

#[test]
fn request_bodies_by_length_and_chunked_reach_the_origin() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let r = c.request("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world");
    let echo = r.json();
    assert_eq!(echo["body"], "hello world");
    assert_eq!(echo["target"], "/posted?fixed=1");
    // Chunked, split over several writes, with an extension and a trailer.
    c.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"lo\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\n");
    let echo = c.read_response().unwrap().json();
    assert_eq!(echo["body"], "hello world");
    let headers = echo["headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h[0] == "content-length" && h[1] == "11"));
    assert!(!headers.iter().any(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("transfer-encoding")));
    // A body that arrives slowly after its head.
    c.send(b"POST /echo?a=b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nab");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"cd");
    let echo = c.read_response().unwrap().json();
    assert_eq!((echo["body"].as_str(), echo["target"].as_str()), (Some("abcd"), Some("/posted?fixed=1&a=b")));
    // A one-megabyte body.
    let big = "x".repeat(1 << 20);
    let r = c.request(&format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    ));
    assert_eq!(r.json()["body"].as_str().map(str::len), Some(1 << 20));
}

#[test]
fn expect_100_continue() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    c.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"abc");
    let r = c.read_response().unwrap();
    assert_eq!((r.status, r.json()["body"].as_str()), (200, Some("abc")));
    // Too large: refused without waiting for the body.
    let r = c.request(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    let mut c = dp.client();
    assert_eq!(
        c.request("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nExpect: later\r\n\r\n")
            .status,
        417
    );
}

#[test]
fn size_limits_as_aws() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let r = dp.client().request("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10485761\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (413, r#"{"message":"Request Too Long"}"#));
    let r = dp.client().request(&format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(10_241)));
    assert_eq!(r.status, 414);
    let r = dp
        .client()
        .request(&format!("GET /one HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "v".repeat(10_300)));
    assert_eq!(r.status, 431);
    // A chunked body that grows past 10 MB: refused as soon as it passes the limit. The
    // writer runs beside the reader, as a real client would, so the response is read before
    // the connection goes away.
    let mut c = dp.client();
    c.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut writer = c.stream.try_clone().unwrap();
    let feeding = std::thread::spawn(move || {
        let chunk = format!("100000\r\n{}\r\n", "z".repeat(0x100000));
        for _ in 0..11 {
            if std::io::Write::write_all(&mut writer, chunk.as_bytes()).is_err() {
                break;
            }
        }
    });
    assert_eq!(c.read_response().map(|r| r.status), Some(413));
    let _ = feeding.join();
    // Exactly the limit is fine.
    let body = "y".repeat(10 * 1024 * 1024);
    let r = dp.client().request(&format!(
        "POST /echo/len HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!((r.status, r.json()["length"].as_u64()), (200, Some(10 * 1024 * 1024)));
    assert_eq!(origin.requests(), 1, "only the accepted body reached the origin");
}

/// Every framing that two HTTP parsers could read differently is refused with 400 and a
/// closed connection, and nothing reaches the backend.
#[test]
fn request_smuggling_shapes_are_refused() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let cases: &[(&str, &str)] = &[
        ("CL and TE", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("differing CL", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
        ("CL list", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4, 5\r\n\r\nabcde"),
        ("signed CL", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: +4\r\n\r\nabcd"),
        ("unknown coding", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("coding list", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("obfuscated coding", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("coding with vtab", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
        ("two TE headers", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("space before colon", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("bare CR", "GET /pets/1 HTTP/1.1\r\nHost: localhost\r\nX: a\rb\r\n\r\n"),
        ("obs-fold", "GET /pets/1 HTTP/1.1\r\nHost: localhost\r\nX: a\r\n b\r\n\r\n"),
        ("bad chunk size", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ("chunk size with 0x", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"),
        ("chunk longer than size", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
        ("chunk size bare LF", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
        ("huge chunk size", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"),
        ("TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two Hosts", "GET /pets/1 HTTP/1.1\r\nHost: localhost\r\nHost: evil\r\n\r\n"),
        ("no Host", "GET /pets/1 HTTP/1.1\r\n\r\n"),
        ("absolute-form, another Host", "GET http://localhost/pets/1 HTTP/1.1\r\nHost: evil\r\n\r\n"),
        ("authority-form", "GET localhost:80 HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("asterisk-form GET", "GET * HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("bare LF request line", "GET /pets/1 HTTP/1.1\nHost: localhost\r\n\r\n"),
        ("bare LF header", "GET /pets/1 HTTP/1.1\r\nHost: localhost\nX-Smuggled: 1\r\n\r\n"),
        ("bare LF end", "GET /pets/1 HTTP/1.1\r\nHost: localhost\n\nGET /pets/2 HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("unregistered method on ANY", "MKCOLA /echo/x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("RTSP method on ANY", "ANNOUNCE /echo/x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("raw UTF-8 target", "GET /echo/caf\u{e9} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("empty chunk extension", "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\na\r\n0\r\n\r\n"),
        ("Content-Length overflow", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        ("garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n"),
    ];
    for (name, raw) in cases {
        let mut c = dp.client();
        c.send(raw.as_bytes());
        let r = c.read_response().unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(r.text(), r#"{"message":"Bad Request"}"#, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        assert!(c.is_closed(), "{name}: connection left open");
    }
    assert_eq!(origin.requests(), 0, "a refused request reached the backend");
    // A pipelined smuggling attempt: the first request is fine, the second is refused, and the
    // bytes after it are never read as a request.
    let mut c = dp.client();
    c.send(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pets/9 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response().unwrap().text(), "one");
    assert_eq!(c.read_response().unwrap().status, 400);
    assert!(c.is_closed());
    assert_eq!(origin.requests(), 0);
}

#[test]
fn slow_clients_are_closed_by_the_timeouts() {
    let origin = Origin::start();
    let options = DataplaneOptions {
        extra_args: ["--header-timeout-secs", "1", "--idle-timeout-secs", "1", "--body-timeout-secs", "1"]
            .map(String::from)
            .to_vec(),
        ..DataplaneOptions::default()
    };
    let dp = Dataplane::start_with(&manifest(origin.addr), options);
    // Slow loris: a byte at a time, never finishing the head.
    let started = Instant::now();
    let mut loris = dp.client();
    loris.set_read_timeout(Duration::from_millis(100));
    let mut closed_after = None;
    for b in
        b"GET /one HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
    {
        if std::io::Write::write_all(&mut loris.stream, &[*b]).is_err() || loris.is_closed() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the slow-loris connection was never closed");
    assert!(closed_after >= Duration::from_millis(900), "closed too early: {closed_after:?}");
    assert!(closed_after < Duration::from_secs(4), "closed too late: {closed_after:?}");
    // Idle keep-alive connection.
    let mut idle = dp.client();
    assert_eq!(idle.get("localhost", "/one").text(), "one");
    let t = Instant::now();
    assert!(idle.is_closed());
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(4));
    // A body that stalls.
    let mut stall = dp.client();
    stall.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc");
    assert!(stall.is_closed());
    assert_eq!(origin.requests(), 0);
    // Meanwhile, everyone else is served.
    assert_eq!(Client::connect(dp.addr).get("localhost", "/two").text(), "two");
}

#[test]
fn many_slow_loris_connections_do_not_starve_others() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let rss_kib = || {
        std::fs::read_to_string(format!("/proc/{}/status", dp.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
            })
            .unwrap()
    };
    assert_eq!(dp.client().get("localhost", "/one").text(), "one");
    let before = rss_kib();
    const SLOW: u64 = 2000;
    let mut held = Vec::new();
    for _ in 0..SLOW {
        let mut c = dp.client();
        c.send(b"GET /one HTTP/1.1\r\nHost: loc");
        held.push(c);
    }
    // Connections complete in the kernel before the shards accept them: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let open = crate::read_metric(&dp, "gateway_open_connections", &[]);
        if open >= SLOW || Instant::now() > deadline {
            break open;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(open >= SLOW, "open connections {open}");
    // One small buffer each (2 KiB read buffer, its task and its slab entry).
    let per_connection = (rss_kib() - before) * 1024 / SLOW;
    assert!(per_connection < 16 * 1024, "{per_connection} bytes per slow connection");
    for _ in 0..20 {
        assert_eq!(dp.client().get("localhost", "/one").text(), "one");
    }
}

#[test]
fn an_unfinished_bad_head_is_refused_as_soon_as_its_bad_line_arrives() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    for (name, partial) in [
        (
            "Content-Length overflow",
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n",
        ),
        (
            "differing Content-Lengths",
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n",
        ),
        ("bare LF", "GET /pets/1 HTTP/1.1\r\nHost: localhost\nX: 1\r\n"),
        ("unregistered method", "MKCOLA /echo/x HTTP/1.1\r\n"),
    ] {
        let mut c = dp.client();
        c.set_read_timeout(Duration::from_secs(2));
        let started = Instant::now();
        c.send(partial.as_bytes());
        let r = c
            .read_response()
            .unwrap_or_else(|| panic!("{name}: no answer within 2 s (header timeout is 10 s)"));
        assert_eq!((r.status, r.text().as_str()), (400, r#"{"message":"Bad Request"}"#), "{name}");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}");
        assert!(c.is_closed(), "{name}");
    }
    assert_eq!(origin.requests(), 0);
}

#[test]
fn absolute_form_targets_are_served_by_their_path() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let r = c.request("GET http://localhost/echo/a?b=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/a?b=1", "the backend gets origin-form");
    // HTTP/1.0 may leave Host out: the authority names the host.
    let r = c.request("GET http://api.example.com/v1/one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "one"));
    // OPTIONS * asks about the server: no route is named, so it is answered as AWS answers an
    // unknown route, and the connection stays usable.
    let r = c.request("OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(c.get("localhost", "/one").text(), "one");
}
