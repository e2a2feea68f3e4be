//! The HTTPS sites of a table: one rustls `ServerConfig` per domain with a certificate (its
//! certificate, security policy and truststore), and one for the default certificate. Built
//! once per table on the link thread, never on a shard; a shard picks the site for each
//! handshake by server name, so a new table's certificates serve the next handshake, and a
//! connection keeps the ones it was made with.
//!
//! Session resumption survives a new table: the ticket keys and the session cache are carried
//! from the previous sites. (The cache is rustls' own, behind a mutex taken once per full
//! handshake; tickets, which TLS 1.3 clients use, take none.)

use proto::table::{ArchivedCertificate, ArchivedKeyFormat, ArchivedTable, ArchivedTlsPolicy};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::sync::Arc;

/// Full-handshake sessions remembered for TLS 1.2 resumption by session id.
const SESSION_CACHE: usize = 4096;

/// A domain's HTTPS settings, ready for handshakes.
pub struct Site {
    /// The domain's host (`*.example.com` for a wildcard); empty for the default certificate.
    pub host: Arc<str>,
    pub config: Arc<ServerConfig>,
}

pub struct Sites {
    by_host: HashMap<String, Site>,
    default: Option<Site>,
    refusing: Arc<ServerConfig>,
    resumption: Resumption,
}

#[derive(Clone)]
struct Resumption {
    tickets: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl Sites {
    /// The sites of `table`, resuming sessions of `previous`'s. A certificate the data plane
    /// cannot load (the control plane checked it, so only a corrupt table) leaves its domains
    /// out, with a log line.
    pub fn build(table: &ArchivedTable, previous: Option<&Sites>) -> Sites {
        let provider = Arc::new(provider());
        let resumption = match previous {
            Some(p) => p.resumption.clone(),
            None => Resumption {
                tickets: rustls::crypto::ring::Ticketer::new().unwrap_or_else(|_| Arc::new(NoTickets)),
                sessions: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE),
            },
        };
        let keys: Vec<Option<Arc<CertifiedKey>>> = table
            .certificates
            .iter()
            .map(|c| match certified_key(c, &provider) {
                Ok(key) => Some(Arc::new(key)),
                Err(e) => {
                    log::warn!("certificate '{}' cannot be loaded: {e}; its domains get no HTTPS", c.name);
                    None
                }
            })
            .collect();
        let mut by_host = HashMap::new();
        for domain in table.domains.iter() {
            let Some(tls) = domain.tls.as_ref() else { continue };
            let Some(Some(key)) = keys.get(tls.certificate.to_native() as usize) else { continue };
            let truststore: Vec<&[u8]> = tls.truststore.iter().map(|c| c.as_slice()).collect();
            match config(&provider, key.clone(), tls.policy, &truststore, &resumption) {
                Ok(config) => {
                    let site = Site { host: Arc::from(domain.host.as_str()), config: Arc::new(config) };
                    by_host.insert(domain.host.to_string(), site);
                }
                Err(e) => log::warn!("domain '{}' gets no HTTPS: {e}", domain.host),
            }
        }
        let default =
            table.default_certificate.as_ref().and_then(|i| keys.get(i.to_native() as usize)?.clone());
        let default = default.and_then(|key| {
            let config = config(&provider, key, ArchivedTlsPolicy::Tls12, &[], &resumption).ok()?;
            Some(Site { host: Arc::from(""), config: Arc::new(config) })
        });
        let refusing = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_no_client_auth().with_cert_resolver(Arc::new(NoCertificate)))
            .expect("the provider supports its default versions");
        Sites { by_host, default, refusing: Arc::new(refusing), resumption }
    }

    /// The site for a handshake's server name: the domain of that name, else the wildcard
    /// domain covering it, else the default certificate's.
    pub fn select(&self, server_name: Option<&str>) -> Option<&Site> {
        let by_name = server_name.and_then(|name| {
            self.by_host.get(name).or_else(|| self.by_host.get(&proto::certificate::wildcard_of(name)?))
        });
        by_name.or(self.default.as_ref())
    }

    /// A configuration with no certificate, whose handshakes rustls refuses with an alert.
    pub fn refusing(&self) -> Arc<ServerConfig> {
        self.refusing.clone()
    }
}

/// rustls' ring provider with AWS's ciphers for its policies: for TLS 1.3 all three suites,
/// for TLS 1.2 ECDHE with AES-GCM. (AWS's TLS_1_2 policy also lists CBC and static-RSA
/// suites, which rustls does not implement; no modern client needs them.)
fn provider() -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

fn certified_key(c: &ArchivedCertificate, provider: &CryptoProvider) -> Result<CertifiedKey, rustls::Error> {
    let chain: Vec<CertificateDer<'static>> =
        c.chain.iter().map(|d| CertificateDer::from(d.to_vec())).collect();
    let der = c.key.to_vec();
    let key: PrivateKeyDer<'static> = match c.key_format {
        ArchivedKeyFormat::Pkcs8 => PrivatePkcs8KeyDer::from(der).into(),
        ArchivedKeyFormat::Sec1 => PrivateSec1KeyDer::from(der).into(),
        ArchivedKeyFormat::Pkcs1 => PrivatePkcs1KeyDer::from(der).into(),
    };
    CertifiedKey::from_der(chain, key, provider)
}

fn config(
    provider: &Arc<CryptoProvider>,
    key: Arc<CertifiedKey>,
    policy: ArchivedTlsPolicy,
    truststore: &[&[u8]],
    resumption: &Resumption,
) -> Result<ServerConfig, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match policy {
        ArchivedTlsPolicy::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        ArchivedTlsPolicy::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = if truststore.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in truststore {
            roots.add(CertificateDer::from(ca.to_vec()))?;
        }
        // Without a certificate that chains to the truststore, within its validity, the
        // handshake fails: AWS's mutual TLS.
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_cert_resolver(Arc::new(OneCertificate(key)));
    // HTTP/1.1 only for now; `h2` joins this list when the server speaks it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = resumption.tickets.clone();
    config.session_storage = resumption.sessions.clone();
    Ok(config)
}

#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Stands in if ring cannot make ticket keys (it always can): resumption by session id only.
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
