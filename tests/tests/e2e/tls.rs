//! HTTPS at the edge: certificates picked by server name (exact, wildcard, default, none),
//! AWS's security policies, mutual TLS with its refusals and its `$context.identity.clientCert`,
//! certificate rotation under load without a failed request, and certificates kept secret by
//! the control plane. Real clients: rustls (in this crate) and curl.

use gateway_tests::process::TempDir;
use gateway_tests::{ControlPlane, Dataplane, DataplaneOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn sign(&self, mut params: CertificateParams, key: KeyPair) -> Pair {
        params.distinguished_name.push(DnType::OrganizationName, "Gateway Tests");
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Pair { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// A server certificate for `names` with an ECDSA P-256 key and this serial.
    fn server(&self, names: &[&str], serial: u64) -> Pair {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.serial_number = Some(serial.into());
        self.sign(params, KeyPair::generate().unwrap())
    }

    /// A server certificate with an RSA 2048 key (made by openssl: ring cannot generate RSA).
    fn server_rsa(&self, names: &[&str]) -> Pair {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("openssl");
        assert!(out.status.success());
        let key =
            KeyPair::from_pem_and_sign_algo(&String::from_utf8(out.stdout).unwrap(), &rcgen::PKCS_RSA_SHA256)
                .unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        self.sign(params, key)
    }

    /// A client certificate; `expired` puts its validity in 2020.
    fn client(&self, cn: &str, expired: bool) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(7u64.into());
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        self.sign(params, KeyPair::generate().unwrap())
    }
}

/// What a client offers.
#[derive(Clone, Default)]
struct Offer<'a> {
    client_cert: Option<&'a Pair>,
    tls12_only: bool,
    /// Send no server name (an IP address as the target).
    no_sni: bool,
}

/// One HTTPS connection from a rustls client.
struct Https {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Https {
    /// Connects and completes the handshake, trusting `roots` (PEM).
    fn connect(addr: SocketAddr, sni: &str, roots: &str, offer: &Offer<'_>) -> Result<Https, String> {
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(roots.as_bytes()) {
            store.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if offer.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store);
        let config = match offer.client_cert {
            Some(pair) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(pair.cert.as_bytes()).map(|c| c.unwrap()).collect();
                let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = if offer.no_sni {
            ServerName::IpAddress(addr.ip().into())
        } else {
            ServerName::try_from(sni.to_string()).unwrap()
        };
        let mut config = config;
        if offer.no_sni {
            config.enable_sni = false;
        }
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
        }
        // TLS 1.3: a refused client certificate is only known once the server reads it; a
        // first read shows the alert. Requests do that read.
        Ok(Https { tls })
    }

    /// The server's leaf certificate, DER.
    fn server_cert(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// One keep-alive request; status and body.
    fn get(&mut self, host: &str, path: &str) -> Result<(u16, String), String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.tls.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("closed after {} bytes", buf.len()));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head_len)) = response.parse(&buf) {
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= head_len + length {
                    let body = String::from_utf8_lossy(&buf[head_len..head_len + length]).to_string();
                    return Ok((response.code.unwrap(), body));
                }
            }
        }
    }
}

/// One request on a new connection.
fn get(
    addr: SocketAddr,
    sni: &str,
    roots: &str,
    offer: &Offer<'_>,
    path: &str,
) -> Result<(u16, String), String> {
    Https::connect(addr, sni, roots, offer)?.get(sni, path)
}

/// The DNS names of a DER certificate.
fn names_of(der: &[u8]) -> Vec<String> {
    proto::certificate::facts(der).unwrap().dns_names
}

/// YAML for a PEM block, indented under a key.
fn block(pem: &str) -> String {
    let mut out = String::from("|\n");
    for line in pem.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn certificate(name: &str, pair: &Pair, default: bool) -> String {
    format!(
        "---\nkind: Certificate\nname: {name}\ndefault: {default}\ncertificate: {}privateKey: {}",
        block(&pair.cert),
        block(&pair.key)
    )
}

const API: &str =
    "kind: Api\nname: hello\nroutes:\n  GET /hi:\n    integration: { type: MOCK, response: { body: hi } }\n\
---\nkind: Stage\napi: hello\nname: prod\n";

fn domain(name: &str, cert: &str, extra: &str) -> String {
    format!(
        "---\nkind: Domain\nname: \"{name}\"\ncertificate: {cert}\n{extra}mappings:\n  - {{ basePath: \"\", api: hello, stage: prod }}\n"
    )
}

fn https_dataplane(manifest: &str) -> (Dataplane, SocketAddr) {
    let dp =
        Dataplane::start_with(manifest, DataplaneOptions { shards: 1, https: true, ..Default::default() });
    let https = dp.https.unwrap();
    (dp, https)
}

#[test]
fn the_server_name_picks_each_certificate_and_unknown_names_get_the_default_or_an_alert() {
    let ca = Ca::new("Test CA");
    let a = ca.server(&["a.test"], 1);
    let b = ca.server_rsa(&["b.test"]);
    let wild = ca.server(&["*.c.test"], 3);
    let fallback = ca.server(&["fallback.test"], 4);
    let manifest = format!(
        "{API}{}{}{}{}{}{}{}",
        certificate("a", &a, false),
        certificate("b", &b, false),
        certificate("wild", &wild, false),
        certificate("fallback", &fallback, true),
        domain("a.test", "a", ""),
        domain("b.test", "b", ""),
        domain("*.c.test", "wild", ""),
    );
    let (_dp, addr) = https_dataplane(&manifest);
    let roots = ca.pem();
    let offer = Offer::default();
    for (sni, expected) in [("a.test", "a.test"), ("b.test", "b.test"), ("x.c.test", "*.c.test")] {
        let mut conn = Https::connect(addr, sni, &roots, &offer).unwrap();
        assert_eq!(names_of(&conn.server_cert()), vec![expected.to_string()], "for {sni}");
        assert_eq!(conn.get(sni, "/hi").unwrap(), (200, "hi".into()));
        // Keep-alive: a second request on the same connection.
        assert_eq!(conn.get(sni, "/hi").unwrap(), (200, "hi".into()));
    }
    // An unknown name and no name at all get the default certificate (so a client checking
    // the name refuses it, and one without SNI is served).
    let unknown = Https::connect(addr, "other.test", &roots, &offer);
    let unknown = unknown.err().unwrap_or_default();
    assert!(
        unknown.contains("only valid for DnsName(\"fallback.test\")"),
        "the default certificate: {unknown}"
    );
    let no_sni = Offer { no_sni: true, ..Offer::default() };
    let no_name = Https::connect(addr, "", &roots, &no_sni).err().unwrap_or_default();
    assert!(
        no_name.contains("only valid for DnsName(\"fallback.test\")"),
        "the default certificate: {no_name}"
    );
    // The wildcard covers one label only.
    assert!(Https::connect(addr, "a.b.c.test", &roots, &offer).is_err());

    // Without a default, an unknown name is refused in the handshake with an alert.
    let manifest = format!("{API}{}{}", certificate("a", &a, false), domain("a.test", "a", ""));
    let (dp, addr) = https_dataplane(&manifest);
    let refused = Https::connect(addr, "other.test", &roots, &offer).err().unwrap_or_default();
    assert!(refused.contains("alert"), "unknown name: {refused}");
    assert_eq!(get(addr, "a.test", &roots, &offer, "/hi").unwrap().0, 200);
    let (_, metrics) = dp.admin_get("/metrics");
    assert!(metrics.contains("gateway_tls_handshake_failures_total{shard=\"0\"} 1"), "{metrics}");
    assert!(metrics.contains("gateway_certificate_expiry_seconds{certificate=\"a\"}"), "{metrics}");
}

#[test]
fn a_tls_1_3_domain_refuses_tls_1_2_clients_and_a_tls_1_2_domain_takes_both() {
    let ca = Ca::new("Policy CA");
    let modern = ca.server(&["modern.test"], 1);
    let compatible = ca.server(&["compatible.test"], 2);
    let manifest = format!(
        "{API}{}{}{}{}",
        certificate("modern", &modern, false),
        certificate("compatible", &compatible, false),
        domain("modern.test", "modern", "securityPolicy: TLS_1_3\n"),
        domain("compatible.test", "compatible", "securityPolicy: TLS_1_2\n"),
    );
    let (_dp, addr) = https_dataplane(&manifest);
    let roots = ca.pem();
    let tls12 = Offer { tls12_only: true, ..Offer::default() };
    let refused = get(addr, "modern.test", &roots, &tls12, "/hi").unwrap_err();
    assert!(refused.contains("ProtocolVersion"), "{refused}");
    assert_eq!(get(addr, "modern.test", &roots, &Offer::default(), "/hi").unwrap().0, 200);
    assert_eq!(get(addr, "compatible.test", &roots, &tls12, "/hi").unwrap().0, 200);
    assert_eq!(get(addr, "compatible.test", &roots, &Offer::default(), "/hi").unwrap().0, 200);
    // A TLS 1.2 handshake for the other name cannot reach the TLS_1_3 domain through Host.
    let mut sneaky = Https::connect(addr, "compatible.test", &roots, &tls12).unwrap();
    assert_eq!(sneaky.get("modern.test", "/hi").unwrap(), (403, r#"{"message":"Forbidden"}"#.into()));
}

#[test]
fn mutual_tls_takes_a_good_client_certificate_and_refuses_none_expired_and_foreign_ones() {
    let ca = Ca::new("Server CA");
    let clients = Ca::new("Client CA");
    let stranger = Ca::new("Other CA");
    let server = ca.server(&["mtls.test"], 1);
    let open = ca.server(&["open.test"], 2);
    let dir = TempDir::new("mtls-log");
    let format = "$context.identity.clientCert.subjectDN|$context.identity.clientCert.issuerDN|\
$context.identity.clientCert.serialNumber|$context.identity.clientCert.validity.notAfter|\
$context.identity.clientCert.clientCertPem";
    let manifest = format!(
        "{}accessLog: {{ destination: m.log, format: '{format}' }}\n{}{}{}{}",
        API,
        certificate("server", &server, false),
        certificate("open", &open, false),
        domain(
            "mtls.test",
            "server",
            &format!("mutualTls:\n  truststore: {}", block(&clients.pem()).replace("\n  ", "\n    "))
        ),
        domain("open.test", "open", ""),
    );
    let extra_args = vec!["--access-log-dir".to_string(), dir.0.display().to_string()];
    let dp = Dataplane::start_with(
        &manifest,
        DataplaneOptions { shards: 1, https: true, extra_args, ..Default::default() },
    );
    let addr = dp.https.unwrap();
    let roots = ca.pem();
    let good = clients.client("alice", false);
    let with = |pair| Offer { client_cert: Some(pair), ..Offer::default() };
    assert_eq!(get(addr, "mtls.test", &roots, &with(&good), "/hi").unwrap(), (200, "hi".into()));
    for (what, offer) in [
        ("no certificate", Offer::default()),
        ("an expired certificate", with(&clients.client("late", true))),
        ("another CA's certificate", with(&stranger.client("mallory", false))),
    ] {
        let result = get(addr, "mtls.test", &roots, &offer, "/hi");
        assert!(
            result.as_ref().is_err_and(|e| e.contains("alert") || e.contains("closed")),
            "{what}: {result:?}"
        );
    }
    // Not around the handshake: another name's connection, or plain HTTP, with Host: mtls.test.
    let mut other = Https::connect(addr, "open.test", &roots, &Offer::default()).unwrap();
    assert_eq!(other.get("mtls.test", "/hi").unwrap().0, 403);
    let mut plain = dp.client();
    let response = plain.request("GET /hi HTTP/1.1\r\nHost: mtls.test\r\n\r\n");
    assert_eq!(response.status, 403);

    // The log line names the client certificate as AWS does.
    let path = dir.0.join("m.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("CN=alice")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no log line with the client certificate: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields[0], "CN=alice,O=Gateway Tests");
    assert_eq!(fields[1], "CN=Client CA");
    assert_eq!(fields[2], "7");
    assert!(fields[3].ends_with(" GMT") && fields[3].len() == 24, "{}", fields[3]);
    assert!(fields[4].starts_with("-----BEGIN CERTIFICATE-----"), "{}", fields[4]);
    // The PEM is the certificate the client sent (escaped newlines in the log line).
    let sent = CertificateDer::pem_slice_iter(good.cert.as_bytes()).next().unwrap().unwrap();
    let logged = fields[4].replace("\\x0a", "\n");
    let logged = CertificateDer::pem_slice_iter(logged.as_bytes()).next().unwrap().unwrap();
    assert_eq!(logged.as_ref(), sent.as_ref());
}

#[test]
fn curl_gets_each_name_with_its_certificate() {
    let ca = Ca::new("Curl CA");
    let dir = TempDir::new("curl");
    let roots = dir.0.join("ca.pem");
    std::fs::write(&roots, ca.pem()).unwrap();
    let one = ca.server(&["one.test"], 1);
    let two = ca.server_rsa(&["two.test"]);
    // Files named by absolute path, as certbot leaves them.
    let mut files = String::new();
    for (name, pair) in [("one", &one), ("two", &two)] {
        let (cert, key) = (dir.0.join(format!("{name}.pem")), dir.0.join(format!("{name}.key")));
        std::fs::write(&cert, &pair.cert).unwrap();
        std::fs::write(&key, &pair.key).unwrap();
        files.push_str(&format!(
            "---\nkind: Certificate\nname: {name}\ncertificateFile: {}\nprivateKeyFile: {}\n",
            cert.display(),
            key.display()
        ));
    }
    let manifest = format!("{API}{files}{}{}", domain("one.test", "one", ""), domain("two.test", "two", ""));
    let (_dp, addr) = https_dataplane(&manifest);
    for name in ["one.test", "two.test"] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&roots)
            .args(["--resolve", &format!("{name}:{}:127.0.0.1", addr.port())])
            .args(["-w", " %{http_code} %{ssl_verify_result}"])
            .arg(format!("https://{name}:{}/hi", addr.port()))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hi 200 0",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_new_certificate_serves_new_handshakes_at_once_and_no_request_fails_meanwhile() {
    let ca = Ca::new("Rotation CA");
    let roots = ca.pem();
    let first = ca.server(&["rotate.test"], 100);
    let second = ca.server(&["rotate.test"], 200);
    let dir = TempDir::new("rotation");
    let cp = ControlPlane::start(&dir.0.join("cp"));
    let state = TempDir::new("rotation-dp");
    let dp = super::follower_with(&cp, &state, DataplaneOptions { https: true, ..Default::default() });
    let addr = dp.https.unwrap();
    let manifest = |pair: &Pair| {
        format!("{API}{}{}", certificate("rotating", pair, false), domain("rotate.test", "rotating", ""))
    };
    cp.apply(&dir.0, &manifest(&first));
    let serial_of = |conn: &Https| proto::certificate::facts(&conn.server_cert()).unwrap().serial;
    let mut old = Https::connect(addr, "rotate.test", &roots, &Offer::default()).unwrap();
    assert_eq!(serial_of(&old), "100");

    // New connections, one request each, as fast as two clients can, across the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed, roots) = (stop.clone(), ok.clone(), failed.clone(), roots.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match get(addr, "rotate.test", &roots, &Offer::default(), "/hi") {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            errors.push(format!("{other:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                errors
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    cp.apply(&dir.0, &manifest(&second));
    // `apply --wait` returned: every shard runs the new table, so the next handshake has the
    // new certificate (well within the second the issue allows).
    let fresh = Https::connect(addr, "rotate.test", &roots, &Offer::default()).unwrap();
    assert_eq!(serial_of(&fresh), "200");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests: {errors:?}");
    assert!(ok.load(Ordering::Relaxed) > 20, "too little load to show anything");
    // A connection made before keeps its certificate and goes on serving.
    assert_eq!(serial_of(&old), "100");
    assert_eq!(old.get("rotate.test", "/hi").unwrap().0, 200);

    // The key never leaves through a reader: not in `get`, not in the store's readable bits.
    let (_, shown, _) = cp.ctl(&["get", "certificate", "rotating", "-o", "json"]);
    let key_body = second.key.lines().nth(1).unwrap();
    assert!(!shown.contains(key_body), "get printed the key: {shown}");
    assert!(shown.contains("redacted, sha256:"), "{shown}");
    let (_, listed, _) = cp.ctl(&["get", "certificate"]);
    assert!(listed.contains("names=rotate.test") && listed.contains("notAfter="), "{listed}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.0.join("cp").join("state.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the store holds private keys");
}

#[test]
fn bad_certificates_are_refused_at_apply_with_the_reason() {
    let ca = Ca::new("Refusal CA");
    let a = ca.server(&["a.test"], 1);
    let b = ca.server(&["b.test"], 2);
    let mismatched = Pair { cert: a.cert.clone(), key: b.key.clone() };
    let cases = [
        (
            format!("{API}{}{}", certificate("c", &mismatched, false), domain("a.test", "c", "")),
            "does not belong to the certificate",
        ),
        (
            format!("{API}{}{}", certificate("c", &a, false), domain("b.test", "c", "")),
            "is for a.test, not for 'b.test'",
        ),
        (
            format!(
                "{API}{}{}",
                certificate("c", &a, false),
                domain("a.test", "c", "securityPolicy: TLS_1_0\n")
            ),
            "TLS_1_0 is not offered",
        ),
        (
            format!("{API}{}{}", certificate("c", &a, false), domain("a.test", "nope", "")),
            "no Certificate named 'nope'",
        ),
        (
            format!(
                "{API}---\nkind: Certificate\nname: c\ncertificate: not pem\nprivateKey: {}",
                block(&a.key)
            ),
            "no PEM certificate",
        ),
    ];
    for (manifest, reason) in cases {
        let dir = TempDir::new("refusal");
        let (code, stderr, _) = gateway_tests::process::compile_result(&dir.0, &manifest);
        assert_ne!(code, 0, "accepted: {reason}");
        assert!(stderr.contains(reason), "wanted '{reason}' in: {stderr}");
        assert!(!stderr.contains(a.key.lines().nth(1).unwrap()), "an error quoted the key");
    }
}

/// An HTTPS origin (rustls, a thread per connection) answering every request `200 secure`
/// with keep-alive; it counts connections and how many of their handshakes resumed a session.
struct TlsOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    resumed: Arc<AtomicU64>,
}

impl TlsOrigin {
    fn start(pair: &Pair, close_each: bool) -> TlsOrigin {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert.as_bytes()).map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, resumed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (c, r) = (connections.clone(), resumed.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                c.fetch_add(1, Ordering::Relaxed);
                let (config, r) = (config.clone(), r.clone());
                std::thread::spawn(move || serve_tls_origin(tcp, config, r, close_each));
            }
        });
        TlsOrigin { addr, connections, resumed }
    }
}

fn serve_tls_origin(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    resumed: Arc<AtomicU64>,
    close_each: bool,
) {
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut counted = false;
    loop {
        let Ok(n) = tls.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        if !counted && !tls.conn.is_handshaking() {
            counted = true;
            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let connection = if close_each { "close" } else { "keep-alive" };
            let response =
                format!("HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: {connection}\r\n\r\nsecure");
            if tls.write_all(response.as_bytes()).is_err() {
                return;
            }
            if close_each {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
        }
    }
}

fn upstream_api(uri: &str, tls: &str) -> String {
    format!(
        "kind: Api\nname: up\nroutes:\n  GET /s:\n    integration:\n      type: HTTP_PROXY\n      uri: \"{uri}\"\n{tls}\
---\nkind: Stage\napi: up\nname: prod\n---\nkind: Domain\nname: localhost\nmappings:\n  - {{ basePath: \"\", api: up, stage: prod }}\n"
    )
}

fn tls_settings(lines: &[(&str, String)]) -> String {
    let mut out = String::from("      tls:\n");
    for (key, value) in lines {
        out.push_str(&format!("        {key}: {value}\n"));
    }
    out
}

/// The status of `GET /s` through the gateway, and its body.
fn through(dp: &Dataplane) -> (u16, String) {
    let response = dp.client().request("GET /s HTTP/1.1\r\nHost: localhost\r\n\r\n");
    (response.status, String::from_utf8_lossy(&response.body).to_string())
}

#[test]
fn https_upstreams_are_verified_pooled_and_resumed_and_each_failure_is_a_502_with_its_cause() {
    let ca = Ca::new("Backend CA");
    let good = TlsOrigin::start(&ca.server(&["localhost"], 1), false);
    let ca_bundle = block(&ca.pem()).replace("\n  ", "\n          ");
    let bundle = [("caBundle", ca_bundle.clone())];
    let dp = Dataplane::start_with(
        &upstream_api(&format!("https://localhost:{}/x", good.addr.port()), &tls_settings(&bundle)),
        DataplaneOptions { shards: 1, ..Default::default() },
    );
    for _ in 0..5 {
        assert_eq!(through(&dp), (200, "secure".into()));
    }
    assert_eq!(
        good.connections.load(Ordering::Relaxed),
        1,
        "keep-alive: one TLS connection for five requests"
    );

    // A new connection per request: the second and later handshakes resume the session.
    let closing = TlsOrigin::start(&ca.server(&["localhost"], 2), true);
    let dp2 = Dataplane::start_with(
        &upstream_api(&format!("https://localhost:{}/x", closing.addr.port()), &tls_settings(&bundle)),
        DataplaneOptions { shards: 1, ..Default::default() },
    );
    for _ in 0..4 {
        assert_eq!(through(&dp2), (200, "secure".into()));
    }
    assert_eq!(closing.connections.load(Ordering::Relaxed), 4);
    assert_eq!(closing.resumed.load(Ordering::Relaxed), 3, "every handshake after the first resumed");

    // Each verification failure: 502, and the log line says why.
    let mut expired_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    expired_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    expired_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = TlsOrigin::start(&ca.sign(expired_params, KeyPair::generate().unwrap()), false);
    let wrong_name = TlsOrigin::start(&ca.server(&["elsewhere.test"], 3), false);
    let stranger = TlsOrigin::start(&Ca::new("Unknown CA").server(&["localhost"], 4), false);
    for (origin, cause) in [
        (&expired, "TLS handshake failed: refused: invalid peer certificate: certificate expired"),
        (
            &wrong_name,
            "TLS handshake failed: refused: invalid peer certificate: certificate not valid for name",
        ),
        (&stranger, "TLS handshake failed: refused: invalid peer certificate: UnknownIssuer"),
    ] {
        let dp = Dataplane::start_with(
            &upstream_api(&format!("https://localhost:{}/x", origin.addr.port()), &tls_settings(&bundle)),
            DataplaneOptions { shards: 1, ..Default::default() },
        );
        assert_eq!(through(&dp).0, 502, "{cause}");
        std::thread::sleep(Duration::from_millis(100));
        let lines = dp.stderr_lines();
        assert!(
            lines.iter().any(|l| l.contains("502 from upstream") && l.contains(cause)),
            "wanted '{cause}' in {lines:?}"
        );
    }

    // AWS's tlsConfig: a name to verify other than the URI's host, and no verification at all.
    let named = TlsOrigin::start(&ca.server(&["backend.internal"], 5), false);
    let dp = Dataplane::start_with(
        &upstream_api(
            &format!("https://127.0.0.1:{}/x", named.addr.port()),
            &tls_settings(&[("caBundle", ca_bundle.clone()), ("serverName", "backend.internal".into())]),
        ),
        DataplaneOptions { shards: 1, ..Default::default() },
    );
    assert_eq!(through(&dp), (200, "secure".into()));
    let dp = Dataplane::start_with(
        &upstream_api(
            &format!("https://localhost:{}/x", stranger.addr.port()),
            &tls_settings(&[("insecureSkipVerification", "true".into())]),
        ),
        DataplaneOptions { shards: 1, ..Default::default() },
    );
    assert_eq!(through(&dp), (200, "secure".into()));
}

#[test]
fn a_request_over_https_reaches_the_backend_as_https_with_the_https_port() {
    let ca = Ca::new("Forwarding CA");
    let origin = gateway_tests::Origin::start();
    let site = ca.server(&["fwd.test"], 1);
    let manifest = format!(
        "kind: Api\nname: hello\nroutes:\n  GET /echo:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{}/echo\" }}\n\
---\nkind: Stage\napi: hello\nname: prod\n{}{}",
        origin.addr,
        certificate("fwd", &site, false),
        domain("fwd.test", "fwd", "")
    );
    let (dp, addr) = https_dataplane(&manifest);
    let (status, body) = get(addr, "fwd.test", &ca.pem(), &Offer::default(), "/echo").unwrap();
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let header = |name: &str| {
        echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(header("x-forwarded-port"), Some(addr.port().to_string()));
    // And plain HTTP still says http, with the plain port.
    let plain = dp.client().request("GET /echo HTTP/1.1\r\nHost: fwd.test\r\n\r\n");
    let echo: serde_json::Value = serde_json::from_str(&plain.text()).unwrap();
    let proto =
        echo["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-forwarded-proto").unwrap()[1].clone();
    assert_eq!(proto, "http");
}

#[test]
fn garbage_and_stalled_handshakes_are_closed_and_cost_nothing_else() {
    let ca = Ca::new("Hostile CA");
    let site = ca.server(&["h.test"], 1);
    let manifest = format!("{API}{}{}", certificate("h", &site, false), domain("h.test", "h", ""));
    let extra_args = vec!["--header-timeout-secs".to_string(), "1".to_string()];
    let dp = Dataplane::start_with(
        &manifest,
        DataplaneOptions { shards: 1, https: true, extra_args, ..Default::default() },
    );
    let addr = dp.https.unwrap();
    let read_until_closed = |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    // Not TLS at all, a plain HTTP request, and a ClientHello cut short: each is closed.
    for junk in [
        &b"\x00\x01\x02garbage\xff\xfe"[..],
        b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(junk).unwrap();
        let took = read_until_closed(s);
        assert!(took < Duration::from_secs(4), "closed after {took:?}");
    }
    // A client that connects and says nothing is closed at the header timeout.
    let took = read_until_closed(TcpStream::connect(addr).unwrap());
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "closed after {took:?}");
    // Meanwhile and afterwards, real clients are served.
    assert_eq!(get(addr, "h.test", &ca.pem(), &Offer::default(), "/hi").unwrap(), (200, "hi".into()));
    let failures = crate::read_metric(&dp, "gateway_tls_handshake_failures_total", &[]);
    assert_eq!(failures, 4, "each bad handshake counted once");
    // Nothing is left open once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::read_metric(&dp, "gateway_open_connections", &[]) != 0 {
        assert!(Instant::now() < deadline, "connections left open");
        std::thread::sleep(Duration::from_millis(20));
    }
}
