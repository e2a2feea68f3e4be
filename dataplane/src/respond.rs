//! The one response writer. Every response the gateway sends (MOCK, proxied, cache hit,
//! gateway error, errors from the connection loop) is written by [`start`], [`header`] and
//! [`finish`] here, so a header every response must carry (date, request id, later CORS) is
//! added in one place, and every status and length reaches the request's trail.

use crate::gateway_error::Kind;
use crate::http1::response::{self, Closing};
use crate::observe::trail::Trail;

/// What every response carries besides its own headers.
#[derive(Clone, Copy)]
pub struct Common<'a> {
    /// `x-amzn-RequestId`.
    pub request_id: &'a [u8],
    /// An IMF-fixdate for the `Date` header.
    pub date: &'a [u8],
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    /// The client spoke HTTP/1.0: keep-alive must then be announced explicitly.
    pub http10: bool,
    /// A response to HEAD: headers only, `Content-Length` as a GET would have it.
    pub head_request: bool,
    /// Where the response's status and length are noted for metrics and the access log.
    pub trail: &'a Trail,
}

impl<'a> Common<'a> {
    /// The common headers for a response that waited (on an upstream, a cache fill): a drain
    /// may have begun meanwhile, and then the response closes the connection.
    pub fn after_wait(&self, draining: bool) -> Common<'a> {
        Common { keep_alive: self.keep_alive && !draining, ..*self }
    }
}

/// Writes the status line and notes the status in the request's trail.
pub fn start(out: &mut Vec<u8>, common: &Common<'_>, status: u16) {
    common.trail.status.set(status);
    response::status_line(out, status);
}

pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    response::header(out, name, value);
}

/// Writes the common headers, `Content-Length`, the end of the head and the body.
/// `content_length` overrides the body's length for HEAD responses that carry no body.
pub fn finish(out: &mut Vec<u8>, common: &Common<'_>, body: &[u8], content_length: Option<u64>) {
    let length = content_length.unwrap_or(body.len() as u64);
    common.trail.body_len.set(length);
    let closing = Closing {
        date: common.date,
        request_id: common.request_id,
        content_length: length,
        keep_alive: common.keep_alive,
        http10: common.http10,
    };
    response::end_head(out, &closing);
    if !common.head_request {
        out.extend_from_slice(body);
    }
}

/// Ends a `101 Switching Protocols` head: the common headers and the upgrade to `protocol`,
/// no length and no body.
pub fn finish_upgrade(out: &mut Vec<u8>, common: &Common<'_>, protocol: &[u8]) {
    common.trail.body_len.set(0);
    response::end_upgrade_head(out, common.date, common.request_id, protocol);
}

/// The gateway response for `kind`, as AWS answers it.
pub fn error(out: &mut Vec<u8>, kind: Kind, common: &Common<'_>) {
    common.trail.error.set(Some(kind));
    let (status, body, error_type) = kind.response();
    start(out, common, status);
    header(out, b"content-type", b"application/json");
    if let Some(error_type) = error_type {
        header(out, b"x-amzn-ErrorType", error_type);
    }
    finish(out, common, body, None);
}

/// `100 Continue`, for a client that sent `Expect: 100-continue` and waits before its body.
pub fn continue_100(out: &mut Vec<u8>) {
    response::continue_100(out);
}
