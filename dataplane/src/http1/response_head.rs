//! Response-head parsing, the client side of the engine (an upstream's answer): httparse for
//! the syntax, then the framing rules that decide where the response ends. Pure: bytes in, a
//! [`ResponseHead`] (header positions recorded in a reusable list) or an error out.
//!
//! As strict as the request side, because a proxy that misjudges where a response ends
//! delivers the rest to the next client: both `Content-Length` and `Transfer-Encoding` are
//! refused, so are differing lengths and lengths beyond `max_body`.

use super::fields::{self, trim_ows};

/// Most header lines in one upstream response.
pub const MAX_HEADERS: usize = 128;

/// How the body of a response is delimited (before the request method and status, which can
/// rule out a body, are taken into account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    Length(u64),
    Chunked,
    /// No length and no chunked coding: the body runs until the upstream closes.
    UntilClose,
}

/// A parsed response head. Header `(name_start, name_end, value_start, value_end)` offsets
/// into the parsed buffer are in the list given to [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the head including the final empty line.
    pub len: usize,
    pub framing: ResponseFraming,
    /// The upstream will keep the connection open after this response.
    pub keep_alive: bool,
    /// The `Content-Length` as sent (a HEAD response repeats the GET's).
    pub content_length: Option<u64>,
}

impl ResponseHead {
    /// An interim (1xx) response: another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Why an upstream's head was refused (answered 502, connection closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseHeadError {
    /// Not HTTP/1.x syntax (httparse's reason).
    Syntax(&'static str),
    MalformedContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`.
    AmbiguousFraming,
    /// A `Content-Length` above the body limit.
    TooLarge,
}

impl ResponseHeadError {
    /// What was wrong, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ResponseHeadError::Syntax(why) => why,
            ResponseHeadError::MalformedContentLength => "malformed Content-Length",
            ResponseHeadError::AmbiguousFraming => "both Content-Length and Transfer-Encoding",
            ResponseHeadError::TooLarge => "a Content-Length over the body limit",
        }
    }
}

/// Parses the response head at the start of `buf`, recording header offsets in `headers`
/// (cleared first). `Ok(None)`: more bytes are needed.
pub fn parse(
    buf: &[u8],
    headers: &mut Vec<(u32, u32, u32, u32)>,
    max_body: u64,
) -> Result<Option<ResponseHead>, ResponseHeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ResponseHeadError::Syntax(super::head::httparse_reason(e))),
    };
    if fields::has_bare_lf(&buf[..len]) {
        return Err(ResponseHeadError::Syntax("a line ending in a bare LF"));
    }
    let status = response.code.ok_or(ResponseHeadError::Syntax("no status"))?;
    let http11 = response.version == Some(1);
    let base = buf.as_ptr() as usize;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    headers.clear();
    for h in response.headers.iter() {
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let (ns, vs) = (offset(h.name.as_bytes()), offset(h.value));
        headers.push((ns, ns + h.name.len() as u32, vs, vs + h.value.len() as u32));
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = fields::content_length(h.value).map_err(|_| ResponseHeadError::MalformedContentLength)?;
            if content_length.is_some_and(|p| p != n) {
                return Err(ResponseHeadError::MalformedContentLength);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The last coding decides the framing; anything but chunked there means "until
            // close" (RFC 9112 §6.3).
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = trim_ows(last).eq_ignore_ascii_case(b"chunked");
            close |= !chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let (closes, keeps) = fields::connection_options(h.value);
            close |= closes;
            keep_alive_token |= keeps;
        }
    }
    // RFC 9112 §6.3 lets a recipient prefer chunked here, but a proxy that relays such a
    // response invites a desync: refuse it.
    if content_length.is_some() && transfer_encoding {
        return Err(ResponseHeadError::AmbiguousFraming);
    }
    if content_length.is_some_and(|n| n > max_body) {
        return Err(ResponseHeadError::TooLarge);
    }
    let framing = match (chunked, content_length) {
        (true, _) => ResponseFraming::Chunked,
        (false, Some(n)) => ResponseFraming::Length(n),
        (false, None) => ResponseFraming::UntilClose,
    };
    let keep_alive = !close && (http11 || keep_alive_token);
    Ok(Some(ResponseHead { status, len, framing, keep_alive, content_length }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 10 * 1024 * 1024;

    fn head(raw: &str) -> Result<Option<ResponseHead>, ResponseHeadError> {
        parse(raw.as_bytes(), &mut Vec::new(), MAX)
    }

    fn framing(raw: &str) -> (ResponseFraming, bool) {
        let h = head(raw).unwrap().unwrap();
        (h.framing, h.keep_alive)
    }

    #[test]
    fn framings_and_keep_alive() {
        use ResponseFraming::*;
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), (Length(2), true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), (Chunked, true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), (Chunked, true));
        // A last coding other than chunked: read until close.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            (UntilClose, false)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), (UntilClose, true));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"),
            (Length(0), false)
        );
        assert_eq!(framing("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"), (Length(0), false));
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n"),
            (Length(0), true)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n"), (Length(3), true));
    }

    #[test]
    fn positions_interim_and_partial_heads() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-A: b\r\n\r\n";
        let mut headers = Vec::new();
        let interim = parse(raw, &mut headers, MAX).unwrap().unwrap();
        assert!(interim.is_interim());
        assert_eq!(interim.len, 25);
        let last = parse(&raw[interim.len..], &mut headers, MAX).unwrap().unwrap();
        assert_eq!((last.status, last.is_interim()), (201, false));
        let (ns, ne, vs, ve) = headers[0];
        let rest = &raw[interim.len..];
        assert_eq!(
            (&rest[ns as usize..ne as usize], &rest[vs as usize..ve as usize]),
            (&b"X-A"[..], &b"b"[..])
        );
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-le"), Ok(None));
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_refused() {
        use ResponseHeadError::*;
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"),
            Err(AmbiguousFraming)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"),
            Err(MalformedContentLength)
        );
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"), Err(MalformedContentLength));
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n"),
            Err(MalformedContentLength)
        );
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: 10485761\r\n\r\n"), Err(TooLarge));
        assert!(matches!(head("HTTP/1.1 2OO OK\r\n\r\n"), Err(Syntax(_))));
        assert!(matches!(head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), Err(Syntax(_))));
        assert!(matches!(head("SSH-2.0-OpenSSH\r\n\r\n"), Err(Syntax(_))));
        assert!(matches!(head("HTTP/1.1 200 OK\ncontent-length: 0\r\n\r\n"), Err(Syntax(_))));
        assert!(matches!(head("HTTP/1.1 200 OK\r\ncontent-length: 0\n\n"), Err(Syntax(_))));
    }
}
