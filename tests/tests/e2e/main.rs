#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests: the real `dataplane` and `controlctl` binaries, on port 0, against a
//! real origin. Run the suite under each io driver with `GATEWAY_IO_DRIVER=uring|epoll`.

mod access_log;
mod backends;
mod cache;
mod control;
mod hostile;
mod http1;
mod lifecycle;
mod loadgen;
mod memory;
mod metrics;
mod proxy;
mod routing;
mod security;
mod throttle;
mod tls;
mod upgrade;
mod usage_plans;

use gateway_tests::process::{bin, TempDir};
use gateway_tests::{ControlPlane, Dataplane, DataplaneOptions};
use std::process::Command;
use std::time::{Duration, Instant};

/// A manifest exercising every integration kind, with the origin's port as a stage variable.
pub fn manifest(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
kind: Api
name: petstore
protocol: REST
routes:
  GET /health:
    integration:
      type: MOCK
      response: {{ status: 200, headers: {{ content-type: application/json, x-mock: "1" }}, body: '{{"status":"ok"}}' }}
  GET /one:
    integration: {{ type: MOCK, response: {{ body: "one" }} }}
  GET /two:
    integration: {{ type: MOCK, response: {{ body: "two" }} }}
  GET /pets/{{petId}}:
    integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/pets/{{petId}}" }}
  GET /pets/dog:
    integration: {{ type: MOCK, response: {{ body: "literal dog" }} }}
  ANY /pets/{{proxy+}}:
    integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/greedy/{{proxy}}" }}
  ANY /echo/{{proxy+}}:
    integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/{{proxy}}" }}
  POST /echo:
    integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/posted?fixed=1" }}
  GET /slow:
    integration: {{ type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/delay/3000", timeout: 500ms }}
  GET /dead:
    integration: {{ type: HTTP_PROXY, uri: "http://127.0.0.1:${{stageVariables.deadPort}}/x" }}
---
kind: Api
name: httpapi
protocol: HTTP
routes:
  GET /hello:
    integration: {{ type: MOCK, response: {{ body: "hello" }} }}
---
kind: Stage
api: petstore
name: prod
variables:
  backend: {origin}
  deadPort: "{dead}"
---
kind: Stage
api: httpapi
name: v2
---
kind: Domain
name: localhost
mappings:
  - {{ basePath: "", api: petstore, stage: prod }}
---
kind: Domain
name: api.example.com
mappings:
  - {{ basePath: "v1", api: petstore, stage: prod }}
  - {{ basePath: "http", api: httpapi, stage: v2 }}
"#,
        dead = dead_port()
    )
}

/// A port with nothing listening on it (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Runs the project's load generator; its JSON result.
pub fn bench(args: &[&str]) -> serde_json::Value {
    let dir = TempDir::new("throttle");
    let json = dir.0.join("r.json");
    let out = Command::new(bin("bench")).args(args).arg("--json").arg(&json).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// Responses with this status class (`2xx`) or code (`429`).
pub fn count(r: &serde_json::Value, status: &str) -> u64 {
    r["status"][status].as_u64().unwrap()
}

/// A data plane following `cp`, returned once the control plane lists it as connected (so an
/// `apply --wait` after this waits for it).
pub fn follower(cp: &ControlPlane, state: &TempDir) -> Dataplane {
    follower_with(cp, state, DataplaneOptions::default())
}

/// [`follower`] with more options (the control plane and state dir are set here).
pub fn follower_with(cp: &ControlPlane, state: &TempDir, options: DataplaneOptions) -> Dataplane {
    let dp = Dataplane::start_with(
        "",
        DataplaneOptions { control_plane: Some((cp.link(), state.0.clone())), ..options },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = cp.ctl(&["status", "-o", "json"]);
        let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let port = format!(":{}", dp.addr.port());
        let connected = status["dataplanes"].as_array().is_some_and(|planes| {
            planes
                .iter()
                .any(|p| p["connected"] == true && p["id"].as_str().is_some_and(|id| id.ends_with(&port)))
        });
        if connected {
            return dp;
        }
        assert!(Instant::now() < deadline, "the data plane never connected: {out}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every shard has exported what it recorded so far (shards export per-method
/// metrics once a second).
pub fn settle_metrics() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// The sum of a `/metrics` series over the lines carrying every one of `labels`.
pub fn read_metric(dp: &Dataplane, name: &str, labels: &[&str]) -> u64 {
    let (_, text) = dp.admin_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
