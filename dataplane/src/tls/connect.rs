//! The client side, for HTTPS upstreams: a rustls `ClientConfig` per upstream's verification
//! settings (made when a table loads, off the shards), and the handshake over a new upstream
//! connection. A config remembers sessions, so a new connection to the same upstream resumes
//! instead of a full handshake.

use super::accept::{finish_handshake, HandshakeError};
use super::stream::{Incoming, TlsStream, SEND_LIMIT};
use monoio::net::TcpStream;
use proto::table::ArchivedUpstreamTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, OnceLock};

/// The system's trusted roots, read once per process (`/etc/ssl/certs` and the like).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::warn!("system CA certificates: {e}");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        log::debug!("system CA certificates: {added} loaded, {ignored} unusable");
        roots
    })
}

/// The configuration that verifies an upstream as its settings say.
pub fn client_config(tls: &ArchivedUpstreamTls) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if tls.insecure_skip_verification {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else if tls.ca_bundle.is_empty() {
        builder.with_root_certificates(system_roots().clone()).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in tls.ca_bundle.iter() {
            roots.add(CertificateDer::from(ca.to_vec())).map_err(|e| format!("caBundle: {e}"))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS connection over `tcp` to `server_name`, verified by `config`.
pub async fn connect(
    mut tcp: TcpStream,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> Result<TlsStream, HandshakeError> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        HandshakeError::Refused(rustls::Error::General(format!("'{server_name}' is not a server name")))
    })?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(HandshakeError::Refused)?;
    conn.set_buffer_limit(Some(SEND_LIMIT));
    let mut conn = rustls::Connection::Client(conn);
    let mut incoming = Incoming::default();
    finish_handshake(&mut tcp, &mut conn, &mut incoming).await?;
    Ok(TlsStream::new(tcp, conn, incoming))
}

/// `insecureSkipVerification`: any certificate chain is taken; the handshake's signatures are
/// still checked, so the connection is encrypted to whoever holds the key it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
