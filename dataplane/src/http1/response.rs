//! Response encoding: status line, headers and body appended to an output buffer, so several
//! pipelined responses leave in one write.

use crate::trail::Trail;

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

/// Writes the status line and notes the status in the request's trail.
pub fn start(out: &mut Vec<u8>, common: &Common<'_>, status: u16) {
    common.trail.status.set(status);
    write_status(out, status);
}

fn write_status(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the common headers, `Content-Length`, the end of the head and the body.
/// `content_length` overrides the body's length for HEAD responses that carry no body.
pub fn finish(out: &mut Vec<u8>, common: &Common<'_>, body: &[u8], content_length: Option<u64>) {
    write_header(out, b"date", common.date);
    write_header(out, b"x-amzn-RequestId", common.request_id);
    let mut n = itoa::Buffer::new();
    let length = content_length.unwrap_or(body.len() as u64);
    common.trail.body_len.set(length);
    write_header(out, b"content-length", n.format(length).as_bytes());
    if !common.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if common.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !common.head_request {
        out.extend_from_slice(body);
    }
}

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}
