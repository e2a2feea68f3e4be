//! HTTPS termination with rustls: the sites a table's certificates make ([`sites`]), the
//! handshake that picks one by server name ([`accept`]), and the stream the connection loop
//! reads and writes through afterwards ([`stream`]); and the client side for HTTPS upstreams
//! ([`connect`]). What a handshake settled reaches the
//! request phases as a [`Session`].

pub mod accept;
pub mod connect;
pub mod sites;
pub mod stream;

use std::sync::Arc;

/// What one TLS connection's handshake settled.
pub struct Session {
    /// The host of the domain whose settings made the handshake (empty: the default
    /// certificate's). A domain with mutual TLS or the TLS_1_3 policy serves only requests on
    /// connections made with its own settings.
    pub site: Arc<str>,
    /// The client's verified certificate, under mutual TLS.
    pub client_cert: Option<ClientCert>,
}

/// A client certificate as `$context.identity.clientCert` shows it.
pub struct ClientCert {
    pub pem: String,
    pub facts: proto::certificate::Facts,
    /// The validity as AWS prints it (`Aug 29 00:28:21 2020 GMT`), made once per connection.
    pub not_before: String,
    pub not_after: String,
}
