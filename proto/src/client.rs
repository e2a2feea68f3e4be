//! How both the data plane and `controlctl` reach the control plane: TLS verified against the
//! control plane's CA, and a bearer token on every call.

use crate::grpc::control_client::ControlClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// What a caller presents.
#[derive(Clone, Default)]
pub struct Credentials {
    /// PEM of the CA that signed the control plane's certificate; none: the system's roots.
    pub ca_pem: Option<String>,
    pub token: Option<String>,
    /// A client certificate and key (PEM), for a data plane that presents one instead of a
    /// token.
    pub identity: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log line.
        f.debug_struct("Credentials").field("ca", &self.ca_pem.is_some()).field("token", &"…").finish()
    }
}

/// Adds `authorization: Bearer TOKEN` to each call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = ControlClient<InterceptedService<Channel, Bearer>>;

/// The endpoint for `url` with TLS set up from the credentials (for `https://` URLs); the
/// caller sets its timeouts, then [`connect`]s.
pub fn endpoint(url: &str, credentials: &Credentials) -> Result<Endpoint, String> {
    let endpoint =
        Endpoint::from_shared(url.to_string()).map_err(|e| format!("bad server URL '{url}': {e}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match &credentials.ca_pem {
        Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
        None => tls.with_enabled_roots(),
    };
    if let Some((cert, key)) = &credentials.identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    endpoint.tls_config(tls).map_err(|e| format!("TLS for {url}: {e}"))
}

/// Connects and wraps the channel so every call carries the token.
pub async fn connect(
    endpoint: Endpoint,
    credentials: &Credentials,
    max_message: usize,
) -> Result<Client, String> {
    let channel = endpoint.connect().await.map_err(|e| describe(&e))?;
    let bearer = match &credentials.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| "the token has characters a header cannot carry".to_string())?,
        ),
        None => None,
    };
    Ok(ControlClient::with_interceptor(channel, Bearer(bearer))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message))
}

/// A transport error with its causes (tonic's own message is only "transport error").
fn describe(e: &tonic::transport::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        // Layers often repeat their cause's words: each text once.
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// A call's failure as a log line says it: a refusal of the caller is named as one.
pub fn status_text(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unauthenticated => format!("refused: not authenticated: {}", status.message()),
        tonic::Code::PermissionDenied => format!("refused: permission denied: {}", status.message()),
        _ => status.message().to_string(),
    }
}
