#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests: the real `dataplane` and `controlctl` binaries, on port 0, against a
//! real origin. Run the suite under each io driver with `GATEWAY_IO_DRIVER=uring|epoll`.

mod control;
mod http1;
mod lifecycle;
mod loadgen;
mod proxy;
mod routing;
mod throttle;

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
