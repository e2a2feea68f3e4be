//! The locked control plane: TLS on its port, and every call refused without a known token
//! (`UNAUTHENTICATED`) or with a role that may not make it (`PERMISSION_DENIED`), with the
//! store unchanged after each refusal; tokens made, listed and revoked with controlctl; data
//! planes that present no valid data-plane token get no table.

use gateway_tests::process::{controlctl_as, TempDir};
use gateway_tests::{ControlPlane, Dataplane, DataplaneOptions};
use proto::grpc;
use std::time::{Duration, Instant};
use tonic::Code;

const MANIFEST: &str = "kind: Api\nname: a\nroutes:\n  GET /x: { integration: { type: MOCK, response: { body: x } } }\n\
---\nkind: Stage\napi: a\nname: s\n---\nkind: UsagePlan\nname: p\nstages: [a/s]\n---\nkind: ApiKey\nname: k\nplan: p\nvalue: key-0123456789abcdefghij\n";

/// Every RPC the control plane serves, called once with `token`; the status code of each.
async fn call_every_rpc(cp: &ControlPlane, token: Option<String>) -> Vec<(&'static str, Code)> {
    let ca_pem = Some(std::fs::read_to_string(cp.data_dir.join("pki/ca.pem")).unwrap());
    let credentials = proto::client::Credentials { ca_pem, token, identity: None };
    let endpoint = proto::client::endpoint(&cp.url(), &credentials).unwrap();
    let mut c = proto::client::connect(endpoint, &credentials, 64 << 20).await.unwrap();
    let file =
        grpc::ManifestFile { name: "m.yaml".into(), content: MANIFEST.replace("name: a\n", "name: b\n") };
    vec![
        (
            "Apply",
            code(
                c.apply(grpc::ApplyRequest { files: vec![file], dry_run: false, attachments: vec![] }).await,
            ),
        ),
        ("Get", code(c.get(grpc::GetRequest { kind: "api".into(), name: String::new() }).await)),
        ("Delete", code(c.delete(grpc::DeleteRequest { kind: "api".into(), name: "zzz".into() }).await)),
        (
            "Deploy",
            code(
                c.deploy(grpc::DeployRequest { api: "a".into(), stage: "s".into(), ..Default::default() })
                    .await,
            ),
        ),
        (
            "Rollback",
            code(
                c.rollback(grpc::RollbackRequest {
                    api: "a".into(),
                    stage: "s".into(),
                    ..Default::default()
                })
                .await,
            ),
        ),
        (
            "ListDeployments",
            code(
                c.list_deployments(grpc::ListDeploymentsRequest { api: "a".into(), stage: "s".into() }).await,
            ),
        ),
        (
            "FlushCache",
            code(c.flush_cache(grpc::FlushCacheRequest { api: "a".into(), stage: "s".into() }).await),
        ),
        ("Status", code(c.status(grpc::StatusRequest {}).await)),
        (
            "Watch",
            code(
                c.watch(grpc::WatchRequest { dataplane_id: "probe".into(), shards: 1, ..Default::default() })
                    .await,
            ),
        ),
        ("Ack", code(c.ack(grpc::AckRequest { dataplane_id: "probe".into(), shards: vec![] }).await)),
        (
            "ReportUsage",
            code(
                c.report_usage(grpc::UsageReport { instance: "probe".into(), sequence: 0, entries: vec![] })
                    .await,
            ),
        ),
        (
            "GetUsage",
            code(c.get_usage(grpc::GetUsageRequest { name: "k".into(), ..Default::default() }).await),
        ),
        (
            "AdjustUsage",
            code(c.adjust_usage(grpc::AdjustUsageRequest { key: "k".into(), ..Default::default() }).await),
        ),
        (
            "ReportMetrics",
            code(
                c.report_metrics(grpc::MetricsReport {
                    dataplane_id: "probe".into(),
                    instance: "probe".into(),
                    methods: vec![],
                })
                .await,
            ),
        ),
        ("GetMetrics", code(c.get_metrics(grpc::GetMetricsRequest::default()).await)),
        (
            "CreateToken",
            code(c.create_token(grpc::CreateTokenRequest { name: "new".into(), role: "admin".into() }).await),
        ),
        ("ListTokens", code(c.list_tokens(grpc::ListTokensRequest {}).await)),
        ("RevokeToken", code(c.revoke_token(grpc::RevokeTokenRequest { name: "zzz".into() }).await)),
    ]
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The stored state and tokens, to show a refusal changed nothing.
fn stored(cp: &ControlPlane) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(cp.data_dir.join("state.json")).unwrap(),
        std::fs::read(cp.data_dir.join("tokens.json")).unwrap(),
    )
}

fn token(cp: &ControlPlane, name: &str, role: &str) -> String {
    let (code, out, err) = cp.ctl(&["tokens", "create", name, "--role", role]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shown once"), "{err}");
    out.trim().to_string()
}

#[test]
fn every_call_is_refused_without_a_token_or_with_the_wrong_role_and_changes_nothing() {
    let work = TempDir::new("cp-auth");
    let cp = ControlPlane::start(&work.0.join("data"));
    cp.apply(&work.0, MANIFEST);
    let viewer = token(&cp, "eyes", "viewer");
    let dataplane = token(&cp, "edge", "dataplane");
    let rt = runtime();
    let before = stored(&cp);

    for (who, token) in [("no token", None), ("a made-up token", Some("gwt_0000".to_string()))] {
        for (rpc, code) in rt.block_on(call_every_rpc(&cp, token)) {
            assert_eq!(code, Code::Unauthenticated, "{rpc} with {who}");
        }
        assert_eq!(stored(&cp), before, "{who} changed the store");
    }
    const READS: &[&str] = &["Get", "ListDeployments", "Status", "GetUsage", "GetMetrics"];
    const DATAPLANE: &[&str] = &["Watch", "Ack", "ReportUsage", "ReportMetrics"];
    for (rpc, code) in rt.block_on(call_every_rpc(&cp, Some(viewer.clone()))) {
        if READS.contains(&rpc) {
            assert_eq!(code, Code::Ok, "a viewer may {rpc}");
        } else {
            assert_eq!(code, Code::PermissionDenied, "a viewer may not {rpc}");
        }
    }
    assert_eq!(stored(&cp), before, "a viewer changed the store");
    for (rpc, code) in rt.block_on(call_every_rpc(&cp, Some(dataplane.clone()))) {
        if DATAPLANE.contains(&rpc) {
            assert_ne!(code, Code::PermissionDenied, "a data plane may {rpc}");
            assert_ne!(code, Code::Unauthenticated, "a data plane may {rpc}");
        } else {
            assert_eq!(code, Code::PermissionDenied, "a data plane may not {rpc}");
        }
    }
    assert_eq!(stored(&cp).0, before.0, "a data plane changed the desired state");

    // controlctl says which refusal it was, and exits 2.
    let config = cp.admin_config();
    let as_token = |token: &str, args: &[&str]| {
        let out = std::process::Command::new(gateway_tests::process::bin("controlctl"))
            .env("CONTROLCTL_CONFIG", &config)
            .env("CONTROLCTL_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let file = work.0.join("m.yaml");
    std::fs::write(&file, MANIFEST.replace("name: a\n", "name: c\n")).unwrap();
    let (code, err) = as_token(&viewer, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("permission denied: token 'eyes' has role viewer"), "{err}");
    let (code, err) = as_token("gwt_wrong", &["get", "api"]);
    assert_eq!(code, 2);
    assert!(err.contains("not authenticated: unknown or revoked token"), "{err}");
    assert_eq!(as_token(&viewer, &["get", "api"]).0, 0);
    assert_eq!(stored(&cp).0, before.0);

    // Tokens: listed by name and role (never the token), revoked for good.
    let (_, list, _) = cp.ctl(&["tokens", "list"]);
    for line in ["admin", "dataplane", "eyes", "edge"] {
        assert!(list.lines().any(|l| l.starts_with(line)), "{list}");
    }
    assert!(!list.contains(&viewer));
    assert_eq!(cp.ctl(&["tokens", "revoke", "eyes"]).0, 0);
    let (code, err) = as_token(&viewer, &["get", "api"]);
    assert!(code == 2 && err.contains("unknown or revoked"), "{err}");
    let (code, _, err) = cp.ctl(&["tokens", "revoke", "admin"]);
    assert!(code != 0 && err.contains("last admin token"), "{err}");
    let tokens_file = std::fs::read_to_string(cp.data_dir.join("tokens.json")).unwrap();
    assert!(!tokens_file.contains(&dataplane), "tokens are stored hashed");
}

#[test]
fn the_control_plane_speaks_tls_only_and_controlctl_checks_its_certificate() {
    let work = TempDir::new("cp-tls");
    let cp = ControlPlane::start(&work.0.join("data"));
    // The admin config from the first start works as is.
    let (code, _, err) = controlctl_as(&cp.admin_config(), &["--server", &cp.url(), "status"]);
    assert_eq!(code, 0, "{err}");
    // Without the CA the server's certificate is not trusted.
    let (code, _, err) = gateway_tests::process::controlctl(&["--server", &cp.url(), "status"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the control plane"), "{err}");
    // Plain HTTP/2 to the port gets no answer a client could take for the service.
    let plain = format!("http://{}", cp.addr);
    let (code, _, _) = controlctl_as(&cp.admin_config(), &["--server", &plain, "status"]);
    assert_eq!(code, 2);
    // Files holding secrets are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["admin.conf", "dataplane.token", "tokens.json", "pki/ca.key", "pki/server.key"] {
        let mode = std::fs::metadata(cp.data_dir.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others");
    }
}

#[test]
fn a_data_plane_without_a_valid_data_plane_token_gets_no_table() {
    let work = TempDir::new("cp-dp-auth");
    let cp = ControlPlane::start(&work.0.join("data"));
    cp.apply(&work.0, MANIFEST);
    let viewer = token(&cp, "eyes", "viewer");
    for (what, token) in [("a wrong token", "gwt_not_a_token".to_string()), ("a viewer token", viewer)] {
        let token_file = work.0.join("bad.token");
        std::fs::write(&token_file, &token).unwrap();
        let mut link = cp.link();
        link.token_file = Some(token_file);
        let state = TempDir::new("dp-bad-token");
        let dp = Dataplane::start_with(
            "",
            DataplaneOptions { control_plane: Some((link, state.0.clone())), ..Default::default() },
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut lines = Vec::new();
        while Instant::now() < deadline {
            lines.extend(dp.stderr.try_iter());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(dp.admin_get("/readyz").0, 503, "{what}: the data plane got a table");
        let (_, status, _) = cp.ctl(&["status", "-o", "json"]);
        assert!(!status.contains(&format!(":{}", dp.addr.port())), "{what}: listed as connected: {status}");
        assert!(
            lines.iter().any(|l| l.starts_with("warning: ") && l.contains("refused: ")),
            "{what}: {lines:?}"
        );
    }
    // The right token: served (connected first, its table a moment later).
    let state = TempDir::new("dp-good-token");
    let dp = super::follower_with(&cp, &state, DataplaneOptions::default());
    let deadline = Instant::now() + Duration::from_secs(10);
    while dp.admin_get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "the data plane with the right token never got its table");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_admin_port_with_a_token_answers_only_callers_that_send_it() {
    let dir = TempDir::new("admin-token");
    let token_file = dir.0.join("admin.token");
    std::fs::write(&token_file, "admin-secret-0123456789\n").unwrap();
    let manifest = "kind: Api\nname: a\nroutes:\n  GET /x: { integration: { type: MOCK } }\n---\nkind: Stage\napi: a\nname: s\n";
    let extra_args = vec!["--admin-token-file".to_string(), token_file.display().to_string()];
    let dp = Dataplane::start_with(manifest, DataplaneOptions { extra_args, ..Default::default() });
    let get = |path: &str, auth: &str| {
        let mut c = gateway_tests::Client::connect(dp.admin);
        let r = c.request(&format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}\r\n"));
        (r.status, r.text())
    };
    assert_eq!(get("/metrics", "").0, 401);
    assert_eq!(get("/readyz", "Authorization: Bearer wrong\r\n").0, 401);
    let (status, body) = get("/metrics", "Authorization: Bearer admin-secret-0123456789\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("gateway_requests_total"));
    assert_eq!(get("/healthz", "").0, 200, "liveness needs no token");
    // Without the flag, nothing is asked (the port is on loopback by default).
    let open = Dataplane::start(manifest);
    assert_eq!(open.admin_get("/metrics").0, 200);
}

#[test]
fn a_data_plane_whose_token_is_revoked_gets_no_further_table() {
    let work = TempDir::new("cp-revoke-dp");
    let cp = ControlPlane::start(&work.0.join("data"));
    cp.apply(&work.0, MANIFEST);
    let token_file = work.0.join("edge.token");
    std::fs::write(&token_file, token(&cp, "edge", "dataplane")).unwrap();
    let mut link = cp.link();
    link.token_file = Some(token_file);
    let state = TempDir::new("dp-revoked");
    let dp = Dataplane::start_with(
        "",
        DataplaneOptions { control_plane: Some((link, state.0.clone())), ..Default::default() },
    );
    // Stage s2 exists only in the second table: execute-api style, `a.host/s2/x`.
    let s2 = || dp.client().request("GET /s2/x HTTP/1.1\r\nHost: a.gw\r\n\r\n").status;
    let deadline = Instant::now() + Duration::from_secs(10);
    while dp.client().request("GET /s/x HTTP/1.1\r\nHost: a.gw\r\n\r\n").status != 200 {
        assert!(Instant::now() < deadline, "the data plane never got its table");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s2(), 403);
    assert_eq!(cp.ctl(&["tokens", "revoke", "edge"]).0, 0);
    let more = format!("{MANIFEST}---\nkind: Stage\napi: a\nname: s2\n");
    let (code, out, err) = cp.apply_result(&work.0, &more, false);
    assert!(code == 0 && out.contains("stage/a/s2 created"), "{out}{err}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s2(), 403, "a revoked data plane was sent the new table");
    assert_eq!(
        dp.client().request("GET /s/x HTTP/1.1\r\nHost: a.gw\r\n\r\n").status,
        200,
        "it goes on serving what it has"
    );
}

#[test]
fn a_data_plane_may_present_a_certificate_from_the_control_planes_ca_instead_of_a_token() {
    let work = TempDir::new("cp-dp-cert");
    let cp = ControlPlane::start(&work.0.join("data"));
    cp.apply(&work.0, MANIFEST);
    let out = std::process::Command::new(gateway_tests::process::bin("controlplane"))
        .arg("--data-dir")
        .arg(&cp.data_dir)
        .args(["issue-dataplane-cert", "--name", "edge-7", "--out"])
        .arg(&work.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (work.0.join("edge-7.pem"), work.0.join("edge-7.key"));
    let with_cert = |cert: &std::path::Path, key: &std::path::Path| {
        let mut link = cp.link();
        link.token_file = None;
        link.client_cert = Some((cert.to_path_buf(), key.to_path_buf()));
        link
    };
    let state = TempDir::new("dp-cert");
    let dp = Dataplane::start_with(
        "",
        DataplaneOptions {
            control_plane: Some((with_cert(&cert, &key), state.0.clone())),
            ..Default::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dp.admin_get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "the data plane with a certificate never got its table");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The certificate is a data plane's and nothing more.
    let rt = runtime();
    let credentials = proto::client::Credentials {
        ca_pem: Some(std::fs::read_to_string(cp.data_dir.join("pki/ca.pem")).unwrap()),
        token: None,
        identity: Some((std::fs::read_to_string(&cert).unwrap(), std::fs::read_to_string(&key).unwrap())),
    };
    let refused = rt.block_on(async {
        let endpoint = proto::client::endpoint(&cp.url(), &credentials).unwrap();
        let mut c = proto::client::connect(endpoint, &credentials, 1 << 20).await.unwrap();
        c.get(grpc::GetRequest { kind: "api".into(), name: String::new() }).await
    });
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);

    // One that claims to be a data plane's, from another CA, does not get through the handshake.
    let stranger = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "edge-8");
    params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "gateway-dataplane");
    let forged = params.self_signed(&stranger).unwrap();
    let (forged_cert, forged_key) = (work.0.join("forged.pem"), work.0.join("forged.key"));
    std::fs::write(&forged_cert, forged.pem()).unwrap();
    std::fs::write(&forged_key, stranger.serialize_pem()).unwrap();
    let state = TempDir::new("dp-forged");
    let forged_dp = Dataplane::start_with(
        "",
        DataplaneOptions {
            control_plane: Some((with_cert(&forged_cert, &forged_key), state.0.clone())),
            ..Default::default()
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(forged_dp.admin_get("/readyz").0, 503, "a forged data-plane certificate got a table");
}
