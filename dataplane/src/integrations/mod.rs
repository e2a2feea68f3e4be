//! Integrations behind one interface: [`call`] runs the route's integration for an exchange
//! and gives back an [`Answer`] (status, headers in the client's form, body), which the
//! gateway writes with [`write`] or the cache phase stores. Each integration is a module:
//! [`mock`] (from the table), [`http`] (HTTP and HTTP_PROXY upstreams); Lambda comes next.

pub mod http;
pub mod mock;

use crate::exchange::{Exchange, Routed};
use crate::gateway_error::Kind;
use crate::respond::{self, Common};
use crate::upstream::client::UpstreamBuffers;
use proto::table::{ArchivedHeader, ArchivedIntegration};
use std::time::Duration;

/// A connection's buffers for integrations, reused from request to request.
pub type Scratch = UpstreamBuffers;

/// An integration's response before it reaches the client.
pub struct Answer<'a> {
    pub status: u16,
    pub headers: Headers<'a>,
    pub body: &'a [u8],
    /// For a HEAD request: the length a GET would have had (the body is empty).
    pub content_length: Option<u64>,
}

/// Where an answer's headers are.
pub enum Headers<'a> {
    /// A MOCK integration's, from the table.
    Table(&'a [ArchivedHeader]),
    /// An upstream's, in the scratch buffers (filtered as they are written).
    Upstream(&'a UpstreamBuffers),
}

impl Headers<'_> {
    /// Writes the headers as the client gets them.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Headers::Table(headers) => {
                let mut has_content_type = false;
                for h in headers.iter() {
                    has_content_type |= h.name.eq_ignore_ascii_case("content-type");
                    respond::header(out, h.name.as_bytes(), h.value.as_bytes());
                }
                // AWS adds a Content-Type to every integration response.
                if !has_content_type {
                    respond::header(out, b"content-type", b"application/json");
                }
            }
            Headers::Upstream(bufs) => http::write_headers(bufs, out),
        }
    }
}

/// True when the integration's responses may be kept in the stage cache (MOCK responses
/// come from the table and never are).
pub fn cacheable(integration: &ArchivedIntegration) -> bool {
    !matches!(integration, ArchivedIntegration::Mock(_))
}

/// How long the integration may take.
pub fn timeout(integration: &ArchivedIntegration) -> Duration {
    match integration {
        ArchivedIntegration::Mock(_) => Duration::ZERO,
        ArchivedIntegration::Http(http) => http::timeout(http),
    }
}

/// Runs the route's integration; a failure is the gateway response to give instead.
pub async fn call<'a>(
    x: &'a Exchange<'a>,
    routed: &'a Routed<'a>,
    scratch: &'a mut Scratch,
) -> Result<Answer<'a>, Kind> {
    match &routed.route.integration {
        ArchivedIntegration::Mock(m) => Ok(mock::answer(m)),
        ArchivedIntegration::Http(integration) => {
            let call = http::Call { exchange: x, routed, integration };
            let response = http::fetch(&call, scratch).await?;
            let scratch = &*scratch;
            let content_length = if x.common.head_request { response.content_length } else { None };
            Ok(Answer {
                status: response.status,
                headers: Headers::Upstream(scratch),
                body: http::body(&response, scratch),
                content_length,
            })
        }
    }
}

/// Writes an answer to the client, with `extra` as one more header if given.
pub fn write(answer: &Answer<'_>, out: &mut Vec<u8>, common: &Common<'_>, extra: Option<(&[u8], &[u8])>) {
    respond::start(out, common, answer.status);
    answer.headers.write(out);
    if let Some((name, value)) = extra {
        respond::header(out, name, value);
    }
    if answer.status == 101 {
        // Only a tunnelled WebSocket upgrade gets here (`http::tunnel_requested`).
        return respond::finish_upgrade(out, common, b"websocket");
    }
    respond::finish(out, common, answer.body, answer.content_length);
}
