//! API keys, usage plans and quotas: 403 without a key that opens the stage, per-key buckets,
//! quotas exact across shards, and usage that reaches the control plane, survives restarts of
//! either plane, and is shared by every data plane.

use crate::{bench, count, follower};
use gateway_tests::process::TempDir;
use gateway_tests::{ControlPlane, Dataplane, DataplaneOptions};
use std::time::{Duration, Instant};

const GOOD: &str = "good-key-0123456789abcdef";
const OTHER: &str = "other-key-0123456789abcdef";
const NO_PLAN: &str = "no-plan-key-0123456789abcdef";
const DISABLED: &str = "disabled-key-0123456789abcdef";
const WRONG_STAGE: &str = "wrong-stage-key-0123456789abcdef";

/// API `a` with a keyed route `/k`, a keyed `/m` with a per-key method throttle, and an open
/// `/open`; stages `s` (covered by plan `p`) and `t` (covered by plan `q`).
fn manifest(plan_extra: &str) -> String {
    format!(
        "kind: Api\nname: a\nroutes:\n  GET /k:\n    apiKeyRequired: true\n    integration: {{ type: MOCK, response: {{ body: k }} }}\n  \
         GET /m:\n    apiKeyRequired: true\n    integration: {{ type: MOCK, response: {{ body: m }} }}\n  \
         GET /open:\n    integration: {{ type: MOCK, response: {{ body: open }} }}\n\
         ---\nkind: Stage\napi: a\nname: s\n---\nkind: Stage\napi: a\nname: t\n\
         ---\nkind: Domain\nname: 127.0.0.1\nmappings:\n  - {{ basePath: \"\", api: a, stage: s }}\n  - {{ basePath: \"t\", api: a, stage: t }}\n\
         ---\nkind: UsagePlan\nname: p\nstages: [a/s]\n{plan_extra}\n\
         ---\nkind: UsagePlan\nname: q\nstages: [a/t]\n\
         ---\nkind: ApiKey\nname: good\nplan: p\nvalue: {GOOD}\n\
         ---\nkind: ApiKey\nname: other\nplan: p\nvalue: {OTHER}\n\
         ---\nkind: ApiKey\nname: noplan\nvalue: {NO_PLAN}\n\
         ---\nkind: ApiKey\nname: off\nplan: p\nenabled: false\nvalue: {DISABLED}\n\
         ---\nkind: ApiKey\nname: wrong\nplan: q\nvalue: {WRONG_STAGE}\n"
    )
}

fn get(dp: &Dataplane, path: &str, key: Option<&str>) -> gateway_tests::Response {
    let header = key.map(|k| format!("x-api-key: {k}\r\n")).unwrap_or_default();
    dp.client().request(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n"))
}

fn burst(dp: &Dataplane, path: &str, key: &str, requests: u64) -> serde_json::Value {
    let url = format!("http://{}{path}", dp.addr);
    let header = format!("x-api-key: {key}");
    let requests = requests.to_string();
    bench(&["burst", "--requests", &requests, "--connections", "64", "-H", &header, &url])
}

#[test]
fn api_key_routes_need_an_enabled_key_of_a_plan_covering_the_stage() {
    let dp = Dataplane::start(&manifest(""));
    for key in
        [None, Some("not-a-key-of-this-gateway-at-all"), Some(NO_PLAN), Some(DISABLED), Some(WRONG_STAGE)]
    {
        let r = get(&dp, "/k", key);
        assert_eq!((r.status, r.text()), (403, r#"{"message":"Forbidden"}"#.to_string()), "key {key:?}");
        assert_eq!(r.header("x-amzn-ErrorType"), Some("ForbiddenException"));
    }
    assert_eq!(get(&dp, "/k", Some(GOOD)).text(), "k");
    assert_eq!(get(&dp, "/t/k", Some(WRONG_STAGE)).text(), "k", "plan q covers stage t");
    assert_eq!(get(&dp, "/open", None).text(), "open", "routes without apiKeyRequired need no key");
    let (_, metrics) = dp.admin_get("/metrics");
    let forbidden: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("gateway_forbidden_api_key_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(forbidden, 5);
}

#[test]
fn each_key_has_its_own_plan_and_method_buckets() {
    let plan =
        "throttle: { rate: 1, burst: 50 }\nmethodThrottle: { a/s: { GET /m: { rate: 1, burst: 10 } } }";
    let dp = Dataplane::start(&manifest(plan));
    let r = burst(&dp, "/k", GOOD, 200);
    assert!((50..=51).contains(&count(&r, "2xx")), "plan burst 50, admitted {}", count(&r, "2xx"));
    let refused = get(&dp, "/k", Some(GOOD));
    assert_eq!((refused.status, refused.text()), (429, r#"{"message":"Too Many Requests"}"#.to_string()));
    // Another key of the same plan has a bucket of its own.
    let r = burst(&dp, "/m", OTHER, 200);
    assert!((10..=11).contains(&count(&r, "2xx")), "method burst 10, admitted {}", count(&r, "2xx"));
    assert_eq!(count(&r, "2xx") + count(&r, "429"), 200);
}

#[test]
fn a_quota_is_exact_across_shards_and_answers_limit_exceeded() {
    let dp = Dataplane::start_with(
        &manifest("quota: { limit: 300, period: DAY }"),
        DataplaneOptions { shards: 4, ..DataplaneOptions::default() },
    );
    let r = burst(&dp, "/k", GOOD, 1000);
    assert_eq!(count(&r, "2xx"), 300);
    let refused = get(&dp, "/k", Some(GOOD));
    assert_eq!((refused.status, refused.text()), (429, r#"{"message":"Limit Exceeded"}"#.to_string()));
    assert_eq!(refused.header("x-amzn-ErrorType"), Some("LimitExceededException"));
    // Each key counts on its own.
    assert_eq!(count(&burst(&dp, "/k", OTHER, 100), "2xx"), 100);
}

#[test]
fn a_throttled_request_uses_no_quota() {
    let dp =
        Dataplane::start(&manifest("throttle: { rate: 10, burst: 20 }\nquota: { limit: 30, period: WEEK }"));
    // 20 admitted, plus one per 100 ms the burst took to arrive (the refill), the rest throttled.
    let r = burst(&dp, "/k", GOOD, 100);
    let first = count(&r, "2xx");
    let refilled = (10.0 * r["elapsed_s"].as_f64().unwrap()).ceil() as u64;
    assert!((20..=21 + refilled).contains(&first), "admitted {first} in {} s", r["elapsed_s"]);
    // Ten tokens a second: the rest of the quota, then Limit Exceeded.
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the quota never ran out");
        let r = get(&dp, "/k", Some(GOOD));
        match r.status {
            200 => admitted += 1,
            429 if r.text().contains("Limit Exceeded") => break,
            429 => {}
            other => panic!("status {other}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(first + admitted, 30, "the quota counted only the admitted requests");
}

/// `controlctl usage KEY -o json`: (used, adjustment, remaining) of the current period.
fn usage(cp: &ControlPlane, key: &str) -> (u64, i64, i64) {
    let (code, out, err) = cp.ctl(&["usage", key, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = rows.as_array().unwrap().last().unwrap().clone();
    (row["used"].as_u64().unwrap(), row["adjustment"].as_i64().unwrap(), row["remaining"].as_i64().unwrap())
}

/// Polls until the control plane's count of `key` stops changing for 1.5 s (one report
/// interval, with margin).
fn settled_usage(cp: &ControlPlane, key: &str) -> (u64, i64, i64) {
    let mut last = usage(cp, key);
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while since.elapsed() < Duration::from_millis(1500) {
        assert!(Instant::now() < deadline, "usage of {key} never settled");
        std::thread::sleep(Duration::from_millis(100));
        let now = usage(cp, key);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

fn wait_exit(dp: &mut Dataplane) {
    dp.terminate();
    let status = dp.wait_exit(Duration::from_secs(15)).expect("the data plane exits");
    assert!(status.success());
}

#[test]
fn a_quota_is_shared_by_data_planes_and_resets_and_grants_reach_them() {
    let work = TempDir::new("quota-shared");
    let cp = ControlPlane::start(&work.0.join("data"));
    let (state1, state2) = (TempDir::new("quota-dp1"), TempDir::new("quota-dp2"));
    let mut dp1 = follower(&cp, &state1);
    cp.apply(&work.0, &manifest("quota: { limit: 400, period: MONTH }"));
    assert_eq!(count(&burst(&dp1, "/k", GOOD, 300), "2xx"), 300);
    // A clean stop reports every request it admitted.
    wait_exit(&mut dp1);
    assert_eq!(usage(&cp, "good"), (300, 0, 100));
    // A second data plane counts the first one's usage.
    let dp2 = follower(&cp, &state2);
    assert!(wait_status(&dp2, OTHER, 200), "the second data plane serves the table");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&burst(&dp2, "/k", GOOD, 300), "2xx"), 100);
    assert_eq!(settled_usage(&cp, "good"), (400, 0, 0));
    // A grant of 50 reaches the data plane within a report interval.
    let (code, out, err) = cp.ctl(&["keys", "grant", "good", "50"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("REMAINING"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&burst(&dp2, "/k", GOOD, 100), "2xx"), 50);
    // A reset zeroes what the control plane has received: let the last second arrive first.
    assert_eq!(settled_usage(&cp, "good"), (450, -50, 0));
    let (code, _, err) = cp.ctl(&["keys", "reset", "good"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&burst(&dp2, "/k", GOOD, 500), "2xx"), 400);
    assert_eq!(settled_usage(&cp, "good").2, 0);
    // A plan name lists every key of the plan; an unknown name is refused.
    let (_, out, _) = cp.ctl(&["usage", "p"]);
    assert!(out.contains("good") && out.contains("other"), "{out}");
    let (code, _, err) = cp.ctl(&["usage", "nobody"]);
    assert_eq!(code, 1, "{err}");
    // Disable, then enable: 403, then served again.
    let (code, _, err) = cp.ctl(&["keys", "disable", "other"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_status(&dp2, OTHER, 403));
    let (code, _, err) = cp.ctl(&["keys", "enable", "other"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_status(&dp2, OTHER, 200));
}

/// Waits (up to 5 s) until a keyed request gets `status`; `controlctl` returns before the
/// data planes swap tables.
fn wait_status(dp: &Dataplane, key: &str, status: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if get(dp, "/open", None).status == 200 && get(dp, "/k", Some(key)).status == status {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn kill_9_of_the_data_plane_loses_at_most_one_report_interval() {
    let work = TempDir::new("quota-kill");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("quota-kill-dp");
    let dp = follower(&cp, &state);
    cp.apply(&work.0, &manifest("quota: { limit: 1000000, period: DAY }"));
    let url = format!("http://{}/k", dp.addr);
    let header = format!("x-api-key: {GOOD}");
    // 500/s for 5 s, with the data plane killed after 2.5 s.
    let load = {
        let (url, header) = (url.clone(), header.clone());
        std::thread::spawn(move || {
            bench(&["steady", "--rate", "500", "--duration", "5", "--connections", "8", "-H", &header, &url])
        })
    };
    std::thread::sleep(Duration::from_millis(2500));
    let mut dp = dp;
    let _ = dp.child.kill();
    let _ = dp.child.wait();
    let served = count(&load.join().unwrap(), "2xx");
    assert!(served > 1000, "served {served} before the kill");
    // The restarted data plane resends what it had not reported (none: it never wrote a
    // pending file while the control plane answered), and the count settles.
    let _restarted = follower(&cp, &state);
    let (used, _, _) = settled_usage(&cp, "good");
    let lost = served as i64 - used as i64;
    eprintln!("kill -9 of the data plane: served {served}, counted {used}, lost {lost}");
    // At most one report interval at 500/s, and never more counted than answered, apart
    // from requests admitted whose response the kill cut off (at most one per connection).
    assert!((-8..=500).contains(&lost), "served {served}, counted {used}: lost {lost}");
}

#[test]
fn kill_9_of_the_control_plane_loses_no_usage() {
    let work = TempDir::new("quota-cp-kill");
    let data = work.0.join("data");
    let mut cp = ControlPlane::start(&data);
    let state = TempDir::new("quota-cp-kill-dp");
    let dp = follower(&cp, &state);
    cp.apply(&work.0, &manifest("quota: { limit: 1000000, period: DAY }"));
    let url = format!("http://{}/k", dp.addr);
    let header = format!("x-api-key: {GOOD}");
    let load = std::thread::spawn(move || {
        bench(&["steady", "--rate", "500", "--duration", "5", "--connections", "8", "-H", &header, &url])
    });
    std::thread::sleep(Duration::from_millis(2000));
    cp.kill9();
    std::thread::sleep(Duration::from_millis(1000));
    // Back on the same address; the data plane kept what it could not report.
    let cp = ControlPlane::start_at(&data, &cp.addr.to_string());
    let served = count(&load.join().unwrap(), "2xx");
    assert_eq!(served, 2500, "the data plane serves while the control plane is away");
    assert_eq!(settled_usage(&cp, "good").0, served, "every admitted request counted once");
}
