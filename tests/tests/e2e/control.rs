use gateway_tests::process::TempDir;
use gateway_tests::{Client, ControlPlane, Dataplane, DataplaneOptions, Origin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An API whose MOCK body carries a version number, plus a proxied route.
fn versioned(version: u64, origin: std::net::SocketAddr) -> String {
    format!(
        r#"kind: Api
name: shop
routes:
  GET /v:
    integration: {{ type: MOCK, response: {{ body: "v{version}" }} }}
  GET /items/{{id}}:
    integration: {{ type: HTTP_PROXY, uri: "http://{origin}/items/{{id}}" }}
---
kind: Stage
api: shop
name: prod
---
kind: Domain
name: localhost
mappings:
  - {{ basePath: "", api: shop, stage: prod }}
"#
    )
}

use crate::follower;

#[test]
fn apply_change_delete_reach_the_data_plane() {
    let work = TempDir::new("cp-apply");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("dp-state");
    let dp = follower(&cp, &state);
    let origin = Origin::start();
    assert_eq!(dp.admin_get("/readyz").0, 503, "no table yet");
    let out = cp.apply(&work.0, &versioned(1, origin.addr));
    assert!(out.contains("api/shop created"), "{out}");
    let id = format!(":{}", dp.addr.port());
    let served = out.lines().find(|l| l.contains("served by 1 data plane(s)")).unwrap_or_default();
    assert!(served.ends_with(&id), "--wait names the data plane it waited for: {out}");
    let mut c = dp.client();
    assert_eq!(c.get("localhost", "/v").text(), "v1");
    assert_eq!(c.get("localhost", "/items/3").json()["target"], "/items/3");
    cp.apply(&work.0, &versioned(2, origin.addr));
    assert_eq!(c.get("localhost", "/v").text(), "v2", "same keep-alive connection, new table");
    let (code, out, _) = cp.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("connected") && out.contains("0:v2 1:v2"), "{out}");
    let (code, out, _) = cp.ctl(&["delete", "domain", "localhost"]);
    assert_eq!((code, out.as_str()), (0, "domain/localhost deleted\n"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.get("localhost", "/v").status != 403 {
        assert!(Instant::now() < deadline, "delete never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        dp.admin_get("/metrics").1.lines().find(|l| l.starts_with("gateway_table_version ")),
        Some("gateway_table_version 3")
    );
}

/// 100 applies (and deploys, rollbacks and deletes beside them) while clients keep requesting:
/// no request fails, and every answer comes from a version that existed, never going
/// backwards on a connection.
#[test]
fn a_hundred_applies_under_load_drop_nothing() {
    let work = TempDir::new("cp-load");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("dp-load");
    let dp = follower(&cp, &state);
    let origin = Origin::start();
    cp.apply(&work.0, &versioned(0, origin.addr));
    let applied = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for k in 0..4 {
        let (addr, applied, stop) = (dp.addr, applied.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let (mut seen, mut requests, mut last) = (0u64, 0u64, 0u64);
            while !stop.load(SeqCst) {
                let ceiling = applied.load(SeqCst) + 1;
                let path = if requests % 2 == 0 { "/v".to_string() } else { format!("/items/{k}") };
                let r = c.get("localhost", &path);
                assert_eq!(r.status, 200, "request {requests} on client {k} failed: {}", r.text());
                if path == "/v" {
                    let v: u64 = r.text().trim_start_matches('v').parse().unwrap();
                    assert!(v >= last, "client {k} went back from v{last} to v{v}");
                    assert!(v <= ceiling, "client {k} saw v{v} before it was applied");
                    last = v;
                    seen = seen.max(v);
                }
                requests += 1;
                // Steady load rather than a spin, so the applies are not starved of the CPU
                // on a 2-core machine.
                std::thread::sleep(Duration::from_micros(500));
            }
            (requests, seen)
        }));
    }
    // Beside the API the clients use, a side API whose stage is deployed, rolled back and
    // deleted while the load runs: none of it may disturb the clients' requests.
    let side = |body: &str| {
        format!(
            "kind: Api\nname: side\nroutes:\n  GET /s: {{ integration: {{ type: MOCK, response: {{ body: {body} }} }} }}\n\
             ---\nkind: Stage\napi: side\nname: manual\nautoDeploy: false\n"
        )
    };
    for v in 1..=100u64 {
        // The version is announced before the apply, so a client may see it the moment it lands.
        applied.store(v, SeqCst);
        cp.apply(&work.0, &versioned(v, origin.addr));
        match v % 10 {
            2 => {
                cp.apply(&work.0, &side("a"));
                cp.apply(&work.0, &side("b"));
                let (code, _, err) = cp.ctl(&["deploy", "side", "--stage", "manual"]);
                assert_eq!(code, 0, "{err}");
            }
            5 => {
                let (code, _, err) = cp.ctl(&["rollback", "side", "--stage", "manual"]);
                assert_eq!(code, 0, "{err}");
            }
            8 => {
                for (kind, name) in [("stage", "side/manual"), ("api", "side")] {
                    let (code, _, err) = cp.ctl(&["delete", kind, name]);
                    assert_eq!(code, 0, "{err}");
                }
            }
            _ => {}
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, SeqCst);
    let mut total = 0;
    for c in clients {
        let (requests, seen) = c.join().expect("a client failed");
        assert_eq!(seen, 100, "a client never saw the last version");
        total += requests;
    }
    assert!(total > 400, "only {total} requests ran during 100 applies");
}

#[test]
fn a_restarted_data_plane_serves_its_last_table_without_the_control_plane() {
    let work = TempDir::new("cp-restart");
    let mut cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("dp-restart");
    let origin = Origin::start();
    {
        let dp = follower(&cp, &state);
        cp.apply(&work.0, &versioned(7, origin.addr));
        assert_eq!(dp.client().get("localhost", "/v").text(), "v7");
    }
    cp.kill9();
    let options =
        DataplaneOptions { control_plane: Some((cp.link(), state.0.clone())), ..DataplaneOptions::default() };
    let dp = Dataplane::start_with("", options);
    assert_eq!(dp.admin_get("/readyz").0, 200);
    assert_eq!(dp.client().get("localhost", "/v").text(), "v7");
    assert!(dp.stderr_lines().iter().any(|l| l.contains("serving persisted table version")));
}

/// kill -9 the control plane while applies are running: after a restart, every apply that was
/// acknowledged (controlctl exited 0) is there.
#[test]
fn the_control_plane_loses_no_acknowledged_change_on_kill_9() {
    let work = TempDir::new("cp-kill");
    let data = work.0.join("data");
    let mut cp = ControlPlane::start(&data);
    let url = cp.url();
    let config = cp.admin_config();
    let dir = work.0.clone();
    let applier = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for i in 0..200 {
            let file = dir.join(format!("api-{i}.yaml"));
            let manifest = format!(
                "kind: Api\nname: api{i}\nroutes:\n  GET /x: {{ integration: {{ type: MOCK }} }}\n---\nkind: Stage\napi: api{i}\nname: s\n"
            );
            std::fs::write(&file, manifest).unwrap();
            let (code, _, _) = gateway_tests::process::controlctl_as(
                &config,
                &["--server", &url, "apply", "-f", file.to_str().unwrap()],
            );
            if code == 0 {
                acknowledged.push(i);
            } else {
                break;
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(700));
    cp.kill9();
    let acknowledged = applier.join().unwrap();
    assert!(
        !acknowledged.is_empty() && acknowledged.len() < 200,
        "kill did not land mid-run: {}",
        acknowledged.len()
    );
    let cp = ControlPlane::start(&data);
    let (code, out, _) = cp.ctl(&["get", "api", "-o", "json"]);
    assert_eq!(code, 0);
    let apis: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: std::collections::HashSet<String> =
        apis.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
    for i in &acknowledged {
        assert!(names.contains(&format!("api{i}")), "acknowledged api{i} was lost");
    }
    // At most the one in flight when the kill came may also be there.
    assert!(names.len() <= acknowledged.len() + 1);
}

#[test]
fn deploy_and_rollback_move_a_manual_stage() {
    let work = TempDir::new("cp-deploy");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("dp-deploy");
    let dp = follower(&cp, &state);
    let manual = |body: &str| {
        format!(
            "kind: Api\nname: app\nroutes:\n  GET /v: {{ integration: {{ type: MOCK, response: {{ body: {body} }} }} }}\n---\nkind: Stage\napi: app\nname: live\nautoDeploy: false\n---\nkind: Domain\nname: localhost\nmappings:\n  - {{ basePath: \"\", api: app, stage: live }}\n"
        )
    };
    cp.apply(&work.0, &manual("one"));
    let mut c = dp.client();
    assert_eq!(c.get("localhost", "/v").text(), "one");
    cp.apply(&work.0, &manual("two"));
    assert_eq!(c.get("localhost", "/v").text(), "one", "autoDeploy: false keeps the deployment");
    let (code, out, _) = cp.ctl(&["deploy", "app", "--stage", "live", "--description", "release two"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("stage/app/live deployed "), "{out}");
    let wait = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut c = dp.client();
        while c.get("localhost", "/v").text() != want {
            assert!(Instant::now() < deadline, "never served {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("two");
    let (_, list, _) = cp.ctl(&["deployments", "app", "--stage", "live"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("release two"));
    let (code, out, _) = cp.ctl(&["rollback", "app", "--stage", "live"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("stage/app/live rolled back to "), "{out}");
    wait("one");
    let (code, _, err) = cp.ctl(&["rollback", "app", "--stage", "live"]);
    assert_eq!((code, err.as_str()), (1, "error: app/live has no earlier deployment\n"));
}

#[test]
fn broken_manifests_are_refused_word_for_word() {
    let work = TempDir::new("cp-broken");
    let cp = ControlPlane::start(&work.0.join("data"));
    let file = work.0.join("broken.yaml");
    std::fs::write(
        &file,
        "kind: Api\nname: a\nprotocol: SOAP\n---\nkind: Api\nname: b\nroutes:\n  GET /x:\n    integration: { type: HTTP_PROXY, uri: \"http://h/{nope}\" }\n  GET /y:\n    integration: { type: MOCK, timeout: 5 minutes }\n---\nkind: Stage\napi: b\nname: bad name\n---\nkind: Widget\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let (code, out, err) = cp.ctl(&["apply", "-f", &f]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "error: {f}:3: protocol: unknown variant `SOAP`, expected one of `REST`, `HTTP`, `WEBSOCKET`\n\
             error: {f}:17: kind: unknown kind 'Widget'; one of Account, Api, Stage, Domain, Certificate, UsagePlan, ApiKey\n\
             2 error(s); nothing applied\n"
        )
    );
    // Syntax is fine, semantics are not: every error, located.
    std::fs::write(
        &file,
        "kind: Api\nname: b\nroutes:\n  GET /x:\n    integration: { type: HTTP_PROXY, uri: \"http://h/{nope}\" }\n  GET /y:\n    integration: { type: MOCK, timeout: 5 minutes }\n---\nkind: Stage\napi: b\nname: bad name\n---\nkind: Stage\napi: b\nname: ok\n",
    )
    .unwrap();
    let (code, _, err) = cp.ctl(&["apply", "-f", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: {f}:11: name: use letters, digits, '-' and '_' (at most 128)\n\
             error: {f}:5: routes[\"GET /x\"].integration.uri: '{{nope}}' is not a path parameter of this route\n\
             error: {f}:7: routes[\"GET /y\"].integration.timeout: '5 minutes' has no known unit; use ms, s, m or h\n\
             3 error(s); nothing applied\n"
        )
    );
    // A misspelt key is named, with the key it probably meant.
    std::fs::write(&file, "kind: Api\nname: c\nroutes:\n  GET /x:\n    integraton: { type: MOCK }\n")
        .unwrap();
    let (code, _, err) = cp.ctl(&["apply", "-f", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: {f}:5: routes[\"GET /x\"]: unknown field `integraton`, expected one of `integration`, `throttle`, `cache`, \
             `apiKeyRequired`; did you mean `integration`?\n1 error(s); nothing applied\n"
        )
    );
    let (code, out, _) = cp.ctl(&["get", "api"]);
    assert_eq!((code, out.as_str()), (0, "KIND   NAME   DETAILS\n"), "nothing was stored");
    let (code, _, err) = cp.ctl(&["--server", "https://127.0.0.1:1", "get", "api"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn api_keys_are_shown_once_and_stored_hashed() {
    let work = TempDir::new("cp-keys");
    let cp = ControlPlane::start(&work.0.join("data"));
    let (code, _, err) = cp.ctl(&["keys", "create", "bob", "--plan", "basic"]);
    assert_eq!(
        (code, err.trim_end()),
        (1, "error: controlctl keys create:3: plan: no UsagePlan named 'basic'\n1 error(s); nothing applied")
    );
    cp.apply_result(&work.0, "kind: UsagePlan\nname: basic\n", false);
    let (code, out, err) = cp.ctl(&["keys", "create", "bob", "--plan", "basic"]);
    assert_eq!(code, 0, "{err}");
    let value = out
        .lines()
        .find_map(|l| l.strip_prefix("apikey/bob generated value "))
        .and_then(|rest| rest.strip_suffix(" (shown once)"))
        .unwrap_or_else(|| panic!("no generated value in {out:?}"))
        .to_string();
    assert_eq!(value.len(), 40);
    let (_, listed, _) = cp.ctl(&["keys", "list"]);
    assert!(listed.contains("bob") && listed.contains("plan=basic") && !listed.contains(&value), "{listed}");
    let (_, json, _) = cp.ctl(&["get", "apikey", "bob", "-o", "json"]);
    assert!(json.contains("sha256:") && !json.contains(&value), "{json}");
    let stored = std::fs::read_to_string(work.0.join("data/state.json")).unwrap();
    assert!(!stored.contains(&value), "the key value reached the disk");
    let (code, out, _) = cp.ctl(&["keys", "revoke", "bob"]);
    assert_eq!((code, out.as_str()), (0, "apikey/bob deleted\n"));
    let (code, _, err) = cp.ctl(&["keys", "revoke", "bob"]);
    assert_eq!((code, err.as_str()), (1, "error: ApiKey 'bob' not found\n"));
}

#[test]
fn a_canary_takes_its_share_of_requests() {
    let work = TempDir::new("cp-canary");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("dp-canary");
    let dp = follower(&cp, &state);
    let api = |body: &str| {
        format!("kind: Api\nname: app\nroutes:\n  GET /v: {{ integration: {{ type: MOCK, response: {{ body: {body} }} }} }}\n")
    };
    let domain =
        "---\nkind: Domain\nname: localhost\nmappings:\n  - { basePath: \"\", api: app, stage: live }\n";
    cp.apply(&work.0, &format!("{}---\nkind: Stage\napi: app\nname: live\n{domain}", api("old")));
    let (_, list, _) = cp.ctl(&["deployments", "app", "--stage", "live", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let old_id = list[0]["id"].as_str().unwrap().to_string();
    // The stage moves to "new" and keeps 30% of its traffic on the old deployment.
    let stage =
        format!("---\nkind: Stage\napi: app\nname: live\ncanary: {{ deployment: {old_id}, percent: 30 }}\n");
    cp.apply(&work.0, &format!("{}{stage}{domain}", api("new")));
    let mut c = dp.client();
    let mut old = 0;
    let n = 4000;
    for _ in 0..n {
        match c.get("localhost", "/v").text().as_str() {
            "old" => old += 1,
            "new" => {}
            other => panic!("unexpected body {other}"),
        }
    }
    let share = f64::from(old) / f64::from(n);
    // 4,000 draws at p = 0.3: the standard deviation is 0.7 points; 3 points is over 4 sigma.
    assert!((share - 0.30).abs() < 0.03, "canary share {share}");
}

#[test]
fn apply_reports_every_error_of_every_route_in_one_run() {
    let work = TempDir::new("cp-all-errors");
    let cp = ControlPlane::start(&work.0.join("data"));
    let file = work.0.join("m.yaml");
    // No stage uses this API yet; its routes are checked all the same.
    std::fs::write(
        &file,
        "kind: Api\nname: a\nroutes:\n  GET /v:\n    integration: { type: MOCK, respnse: { body: x } }\n  FETCH /w:\n    integration: { type: MOCK }\n  GET /x:\n    integration: { type: HTTP_PROXY }\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let (code, out, err) = cp.ctl(&["apply", "-f", &f]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "error: {f}:5: routes[\"GET /v\"].integration: unknown field `respnse`, expected one of `type`, `uri`, `method`, `timeout`, `response`, `tls`; did you mean `response`?\n\
             error: {f}:6: routes[\"FETCH /w\"]: unknown method 'FETCH'; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY\n\
             error: {f}:9: routes[\"GET /x\"].integration.uri: required for HTTP integrations\n\
             3 error(s); nothing applied\n"
        )
    );
    let (_, out, _) = cp.ctl(&["get", "api"]);
    assert!(!out.contains(" a "), "nothing was stored: {out}");
}

/// A data plane whose persisted table has the control plane's version number but other
/// content (restored from elsewhere, altered on its disk) is sent the real table: tables are
/// reconciled by their digest, not only by version.
#[test]
fn a_table_with_the_right_version_but_other_content_is_replaced() {
    let work = TempDir::new("cp-reconcile");
    let cp = ControlPlane::start(&work.0.join("data"));
    let origin = Origin::start();
    cp.apply(&work.0, &versioned(1, origin.addr));
    let (_, out, _) = cp.ctl(&["status", "-o", "json"]);
    let version = serde_json::from_str::<serde_json::Value>(&out).unwrap()["version"].as_u64().unwrap();
    // The same version number, compiled from other content, put where the data plane looks.
    let state = TempDir::new("dp-reconcile");
    let stale = work.0.join("stale.yaml");
    std::fs::write(&stale, versioned(666, origin.addr)).unwrap();
    let (code, _, err) = gateway_tests::process::controlctl(&[
        "compile",
        "-f",
        stale.to_str().unwrap(),
        "-o",
        state.0.join("table.bin").to_str().unwrap(),
        "--version",
        &version.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let dp = follower(&cp, &state);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = dp.client().get("localhost", "/v").text();
        if body == "v1" {
            break;
        }
        assert_eq!(body, "v666", "either the persisted table or the control plane's");
        assert!(Instant::now() < deadline, "the stale table of version {version} was never replaced");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A full disk under the control plane's store: the change is refused (exit 1, with the
/// cause), and the acknowledged state is intact, before and after a restart.
#[test]
fn a_full_disk_refuses_the_change_and_keeps_the_acknowledged_state() {
    let work = TempDir::new("cp-full-disk");
    let data = work.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A 256 KiB tmpfs: needs root (CI and the development machines run as root).
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a tmpfs failed (this test needs root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    let origin = Origin::start();
    let mut cp = ControlPlane::start(&data);
    cp.apply(&work.0, &versioned(1, origin.addr));
    // Fill the disk, then try a change.
    let filler = data.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 256 * 1024]);
    let (code, _, err) = cp.apply_result(&work.0, &versioned(2, origin.addr), false);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not applied: storing it failed") && err.contains("No space left"), "{err}");
    let (_, out, _) = cp.ctl(&["get", "api", "shop", "-o", "json"]);
    assert!(out.contains("\"v1\"") && !out.contains("\"v2\""), "{out}");
    // Room again, and a restart: the acknowledged state, and changes work again.
    std::fs::remove_file(&filler).unwrap();
    cp.kill9();
    let cp = ControlPlane::start_at(&data, &cp.addr.to_string());
    let (_, out, _) = cp.ctl(&["get", "api", "shop", "-o", "json"]);
    assert!(out.contains("\"v1\""), "{out}");
    cp.apply(&work.0, &versioned(2, origin.addr));
}

/// `apply --wait` names the data planes it waited for, and those it did not because they
/// are down, so a success never hides one.
#[test]
fn apply_wait_names_the_data_planes_it_did_not_wait_for() {
    let work = TempDir::new("cp-wait-names");
    let cp = ControlPlane::start(&work.0.join("data"));
    let (state_up, state_down) = (TempDir::new("dp-up"), TempDir::new("dp-down"));
    let up = follower(&cp, &state_up);
    let down = follower(&cp, &state_down);
    let down_id = format!(":{}", down.addr.port());
    drop(down);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = cp.ctl(&["status"]);
        if out.lines().any(|l| l.contains(&down_id) && l.contains("disconnected")) {
            break;
        }
        assert!(Instant::now() < deadline, "the killed data plane never showed as disconnected: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let origin = Origin::start();
    let out = cp.apply(&work.0, &versioned(1, origin.addr));
    let line = out.lines().find(|l| l.contains("served by 1 data plane(s)")).unwrap_or_default();
    let (waited, not_waited) = line.split_once("; not waited for (disconnected): ").expect(&out);
    assert!(waited.ends_with(&format!(":{}", up.addr.port())), "{out}");
    assert!(not_waited.ends_with(&down_id), "{out}");
}

/// A second data plane with an id already connected is refused, so the two never hide each
/// other; the first goes on being served.
#[test]
fn a_duplicate_data_plane_id_is_refused() {
    let work = TempDir::new("cp-dup-id");
    let cp = ControlPlane::start(&work.0.join("data"));
    let origin = Origin::start();
    let start = |state: &TempDir| {
        let options = DataplaneOptions {
            control_plane: Some((cp.link(), state.0.clone())),
            extra_args: vec!["--id".into(), "edge-1".into()],
            ..DataplaneOptions::default()
        };
        Dataplane::start_with("", options)
    };
    let (first_state, second_state) = (TempDir::new("dp-dup-1"), TempDir::new("dp-dup-2"));
    let first = start(&first_state);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cp.ctl(&["status"]).1.contains("edge-1") {
        assert!(Instant::now() < deadline, "the first data plane never connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = start(&second_state);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut said = Vec::new();
    while !said.iter().any(|l: &String| l.contains("already connected") && l.contains("own --id")) {
        assert!(Instant::now() < deadline, "the second data plane was not refused: {said:?}");
        said.extend(second.stderr_lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    cp.apply(&work.0, &versioned(1, origin.addr));
    assert_eq!(first.client().get("localhost", "/v").text(), "v1");
    let (_, out, _) = cp.ctl(&["status"]);
    assert_eq!(out.matches("edge-1").count(), 1, "{out}");
}

#[test]
fn the_control_plane_logs_applies_and_data_planes_with_levels() {
    let data = TempDir::new("cp-log");
    let state = TempDir::new("cp-log-dp");
    let cp = ControlPlane::start(&data.0);
    let dp = crate::follower(&cp, &state);
    let origin = Origin::start();
    cp.apply(&data.0, &versioned(1, origin.addr));
    cp.apply(&data.0, &versioned(1, origin.addr));
    drop(dp);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.contains("disconnected")) && Instant::now() < deadline {
        lines.extend(cp.stderr.recv_timeout(Duration::from_millis(100)));
    }
    lines.extend(cp.stderr.try_iter());
    let has = |text: &str| lines.iter().any(|l| l.starts_with("info: ") && l.contains(text));
    assert!(has("state version 0 from"), "{lines:?}");
    assert!(has(" connected from 127.0.0.1:"), "{lines:?}");
    assert!(has("disconnected"), "{lines:?}");
    let applied = lines.iter().filter(|l| l.contains("applied version")).count();
    assert_eq!(applied, 1, "the unchanged second apply is not logged: {lines:?}");
}

#[test]
fn deployment_history_is_bounded_and_an_old_state_is_compacted_on_start() {
    let data = TempDir::new("cp-history");
    let origin = Origin::start();
    let mut cp = ControlPlane::start(&data.0);
    for v in 1..=6 {
        cp.apply(&data.0, &versioned(v, origin.addr));
    }
    let count = |cp: &ControlPlane| {
        let (code, out, err) = cp.ctl(&["deployments", "shop", "--stage", "prod", "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().map_or(0, Vec::len)
    };
    assert_eq!(count(&cp), 6, "below the default of 10, every deployment is kept");
    let state_file = data.0.join("state.json");
    let before = std::fs::metadata(&state_file).unwrap().len();
    let addr = cp.addr.to_string();
    cp.kill9();
    let cp = ControlPlane::start_with(&data.0, &addr, &["--deployment-history", "2"]);
    assert_eq!(count(&cp), 2);
    let after = std::fs::metadata(&state_file).unwrap().len();
    assert!(after < before, "state.json is {after} bytes, {before} before compaction");
    let lines: Vec<String> = cp.stderr.try_iter().collect();
    assert!(lines.iter().any(|l| l.contains("compacted the state")), "{lines:?}");
    // What was served survives, and new deployments stay within the bound.
    cp.apply(&data.0, &versioned(7, origin.addr));
    assert_eq!(count(&cp), 2);
}
