//! The server handshake: read the ClientHello, let its server name pick the site (and so the
//! certificate, the policy and mutual TLS), then drive the handshake to its end. A refusal
//! (unknown name without a default, an unusable hello, a bad client certificate) sends the
//! alert rustls chose before the socket closes.

use super::sites::{Site, Sites};
use super::stream::{Incoming, TlsStream, SEND_LIMIT};
use super::Session;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use rustls::server::Acceptor;
use std::io;

/// Why a handshake failed, for the counters and a rate-limited log line.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client went away (or the deadline shut the socket) before the handshake ended.
    Closed,
    /// The server name matched no site and there is no default certificate.
    UnknownName(Option<String>),
    /// rustls refused the handshake (protocol, policy, client certificate).
    Refused(rustls::Error),
    Io(io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Closed => write!(f, "closed during the handshake"),
            HandshakeError::UnknownName(Some(name)) => write!(f, "no certificate for server name '{name}'"),
            HandshakeError::UnknownName(None) => write!(f, "no server name and no default certificate"),
            HandshakeError::Refused(e) => write!(f, "refused: {e}"),
            HandshakeError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Runs the handshake on `tcp` with the sites of the current table.
pub async fn accept(mut tcp: TcpStream, sites: &Sites) -> Result<(TlsStream, Session), HandshakeError> {
    let mut incoming = Incoming::default();
    let mut acceptor = Acceptor::default();
    let accepted = loop {
        match incoming.fill(&mut tcp).await {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) => {}
            Err(e) => return Err(HandshakeError::Io(e)),
        }
        incoming.feed_acceptor(&mut acceptor).map_err(HandshakeError::Io)?;
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => continue,
            Err((e, alert)) => {
                send_alert(&mut tcp, alert).await;
                return Err(HandshakeError::Refused(e));
            }
        }
    };
    let server_name = accepted.client_hello().server_name().map(str::to_ascii_lowercase);
    let Some(site) = sites.select(server_name.as_deref()) else {
        // rustls with no certificate to offer answers the alert a client expects.
        if let Err((_, alert)) = accepted.into_connection(sites.refusing()) {
            send_alert(&mut tcp, alert).await;
        }
        return Err(HandshakeError::UnknownName(server_name));
    };
    let mut conn = match accepted.into_connection(site.config.clone()) {
        Ok(conn) => conn,
        Err((e, alert)) => {
            send_alert(&mut tcp, alert).await;
            return Err(HandshakeError::Refused(e));
        }
    };
    conn.set_buffer_limit(Some(SEND_LIMIT));
    let mut conn = rustls::Connection::Server(conn);
    finish_handshake(&mut tcp, &mut conn, &mut incoming).await?;
    let session = Session::of(&conn, site);
    Ok((TlsStream::new(tcp, conn, incoming), session))
}

/// Sends the alert rustls chose for a refused hello, best effort: the connection closes next.
async fn send_alert(tcp: &mut TcpStream, mut alert: rustls::server::AcceptedAlert) {
    let mut out = Vec::new();
    if alert.write_all(&mut out).is_ok() && !out.is_empty() {
        let _ = tcp.write_all(out).await;
    }
}

/// Drives a handshake to its end, either side: writes what rustls wants sent, reads what it
/// wants to read. A refusal sends rustls' alert before it returns.
pub async fn finish_handshake(
    tcp: &mut TcpStream,
    conn: &mut rustls::Connection,
    incoming: &mut Incoming,
) -> Result<(), HandshakeError> {
    let mut outgoing = Vec::new();
    let mut result = conn.process_new_packets().map(|_| ());
    loop {
        while conn.wants_write() {
            if conn.write_tls(&mut outgoing).is_err() {
                break;
            }
        }
        if !outgoing.is_empty() {
            let (written, back) = tcp.write_all(std::mem::take(&mut outgoing)).await;
            outgoing = back;
            outgoing.clear();
            written.map_err(HandshakeError::Io)?;
        }
        if let Err(e) = result {
            // The alert for it went out above.
            return Err(HandshakeError::Refused(e));
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        match incoming.fill(tcp).await {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) => {}
            Err(e) => return Err(HandshakeError::Io(e)),
        }
        result = incoming.feed(conn).map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<rustls::Error>() {
                Ok(tls) => *tls,
                Err(other) => rustls::Error::General(other.to_string()),
            },
            None => rustls::Error::General("unreadable record".into()),
        });
    }
}

impl Incoming {
    /// Hands the acceptor what is buffered (all of it: before the hello is whole, nothing is
    /// decrypted that could fill a buffer).
    fn feed_acceptor(&mut self, acceptor: &mut Acceptor) -> io::Result<()> {
        let mut unread = self.unread();
        while !unread.is_empty() {
            if acceptor.read_tls(&mut unread)? == 0 {
                break;
            }
        }
        let consumed = self.unread().len() - unread.len();
        self.consume(consumed);
        Ok(())
    }
}

/// What the handshake settled, for the request phases: the site it was for and the client's
/// certificate.
impl Session {
    fn of(conn: &rustls::Connection, site: &Site) -> Session {
        let client_cert = conn.peer_certificates().and_then(|chain| chain.first()).and_then(|leaf| {
            let facts = proto::certificate::facts(leaf.as_ref()).ok()?;
            Some(super::ClientCert {
                pem: pem_of(leaf.as_ref()),
                not_before: proto::certificate::openssl_time(facts.not_before),
                not_after: proto::certificate::openssl_time(facts.not_after),
                facts,
            })
        });
        Session { site: site.host.clone(), client_cert }
    }
}

/// A DER certificate as PEM text, as AWS passes `clientCertPem`.
fn pem_of(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_lines_are_base64_of_the_der() {
        let pem = super::pem_of(b"Man");
        assert_eq!(pem, "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n");
        assert!(super::pem_of(b"Ma").contains("\nTWE=\n"));
        assert!(super::pem_of(&[0u8; 48]).lines().nth(1).is_some_and(|l| l.len() == 64));
    }
}
