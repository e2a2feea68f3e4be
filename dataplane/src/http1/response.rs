//! Response encoding, pure: the status line, header lines and the end of a head appended to an
//! output buffer, so several pipelined responses leave in one write. Every response the
//! gateway sends is written through [`crate::respond`], which uses these.

/// What ends every response head: the headers each response carries and its framing.
#[derive(Clone, Copy)]
pub struct Closing<'a> {
    /// An IMF-fixdate for the `Date` header.
    pub date: &'a [u8],
    /// `x-amzn-RequestId`.
    pub request_id: &'a [u8],
    pub content_length: u64,
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    /// The client spoke HTTP/1.0: keep-alive must then be announced explicitly.
    pub http10: bool,
}

pub fn status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `Date`, `x-amzn-RequestId`, `Content-Length`, the connection header if one is needed, and
/// the empty line that ends the head.
pub fn end_head(out: &mut Vec<u8>, closing: &Closing<'_>) {
    header(out, b"date", closing.date);
    header(out, b"x-amzn-RequestId", closing.request_id);
    let mut n = itoa::Buffer::new();
    header(out, b"content-length", n.format(closing.content_length).as_bytes());
    if !closing.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if closing.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `Date`, `x-amzn-RequestId` and the upgrade to `protocol`, ending a `101 Switching
/// Protocols` head (which has no length: the connection stops being HTTP after it).
pub fn end_upgrade_head(out: &mut Vec<u8>, date: &[u8], request_id: &[u8], protocol: &[u8]) {
    header(out, b"date", date);
    header(out, b"x-amzn-RequestId", request_id);
    header(out, b"connection", b"upgrade");
    header(out, b"upgrade", protocol);
    out.extend_from_slice(b"\r\n");
}

/// The interim response a client that sent `Expect: 100-continue` waits for.
pub fn continue_100(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
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
