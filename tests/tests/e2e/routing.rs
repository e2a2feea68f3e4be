use crate::manifest;
use gateway_tests::{Dataplane, Origin};

#[test]
fn unknown_routes_answer_as_aws_does() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let r = c.get("localhost", "/nope");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), r#"{"message":"Missing Authentication Token"}"#);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("MissingAuthenticationTokenException"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Method mismatch is an unknown route too.
    assert_eq!(c.request("DELETE /health HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 403);
    // An HTTP API answers 404.
    let r = c.get("api.example.com", "/http/nope");
    assert_eq!((r.status, r.text().as_str()), (404, r#"{"message":"Not Found"}"#));
    assert_eq!(c.get("api.example.com", "/http/hello").text(), "hello");
    // No API for this host and path.
    let r = c.get("api.example.com", "/v2/health");
    assert_eq!((r.status, r.text().as_str()), (403, r#"{"message":"Forbidden"}"#));
    assert_eq!(origin.requests(), 0);
}

#[test]
fn domains_base_paths_and_execute_api_addressing() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    assert_eq!(c.get("localhost:8080", "/health").text(), r#"{"status":"ok"}"#);
    assert_eq!(c.get("API.EXAMPLE.COM", "/v1/health").text(), r#"{"status":"ok"}"#);
    assert_eq!(c.get("petstore.execute-api.local", "/prod/health").text(), r#"{"status":"ok"}"#);
    assert_eq!(c.get("petstore.execute-api.local", "/dev/health").status, 403);
    assert_eq!(c.get("httpapi.anything", "/v2/hello").text(), "hello");
}

#[test]
fn precedence_literal_then_param_then_greedy() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    assert_eq!(c.get("localhost", "/pets/dog").text(), "literal dog");
    assert_eq!(c.get("localhost", "/pets/42").json()["target"], "/pets/42");
    assert_eq!(c.get("localhost", "/pets/42/toys/7").json()["target"], "/greedy/42/toys/7");
    let r = c.request("DELETE /pets/dog HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.json()["target"], "/greedy/dog", "ANY greedy catches a method the literal lacks");
}
