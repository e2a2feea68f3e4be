//! Request-head parsing: httparse for the syntax, then the framing and smuggling rules that
//! decide how long the body is. Pure: bytes in, a borrowed [`Head`] or a [`HeadError`] out.
//!
//! httparse itself refuses a bare CR, obs-fold continuation lines and whitespace between a
//! header name and its colon (the unit tests below pin that down); this module adds the rest.
//!
//! The rules are strict on purpose. Whenever two HTTP implementations could disagree on where a
//! request ends (both `Content-Length` and `Transfer-Encoding`, differing lengths, an obfuscated
//! coding), the request is refused with 400 and the connection closed, so nothing ambiguous can
//! reach a backend.

use super::fields::{self, trim_ows, FieldError};
use std::mem::MaybeUninit;

/// Size limits, AWS's by default.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request target (path and query), AWS: 10,240.
    pub max_uri: usize,
    /// Largest header section (all header lines), AWS: 10,240 bytes.
    pub max_header_bytes: usize,
    /// Largest body, AWS: 10 MB.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_uri: 10_240, max_header_bytes: 10_240, max_body: 10 * 1024 * 1024 }
    }
}

/// Most header lines in one request; more is answered 431.
pub const MAX_HEADERS: usize = 100;

/// Where one header sits in the parsed bytes: name and value as byte ranges. A connection
/// keeps a reusable list of these instead of httparse's borrowed headers, so the head it is
/// answering costs its future a slice, not a 3 KiB array, while it awaits an integration.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderSpan {
    name: (u32, u32),
    value: (u32, u32),
}

/// The headers of a parsed head.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'b, 'h> {
    buf: &'b [u8],
    spans: &'h [HeaderSpan],
}

impl<'b> Headers<'b, '_> {
    /// Names and values in order. Names are tokens (checked by httparse), so they are ASCII.
    pub fn iter(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + '_ {
        let buf = self.buf;
        self.spans.iter().map(move |s| {
            let name = std::str::from_utf8(&buf[s.name.0 as usize..s.name.1 as usize]).unwrap_or("");
            (name, &buf[s.value.0 as usize..s.value.1 as usize])
        })
    }

    /// The first value of a header (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<&'b [u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no `Content-Length`, no `Transfer-Encoding`, or `Content-Length: 0`).
    Empty,
    Length(u64),
    Chunked,
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug)]
pub struct Head<'b, 'h> {
    pub method: &'b str,
    /// The request target as sent: path and optional `?query`.
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Headers<'b, 'h>,
    /// Bytes of the head including the final empty line.
    pub len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub host: Option<&'b str>,
}

impl<'b> Head<'b, '_> {
    pub fn path(&self) -> &'b str {
        match self.target.find('?') {
            Some(q) => &self.target[..q],
            None => self.target,
        }
    }

    pub fn query(&self) -> Option<&'b str> {
        self.target.find('?').map(|q| &self.target[q + 1..])
    }
}

/// Why a head was refused. Each maps to one status; all close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed syntax or an ambiguous framing; the reason is for logs and tests.
    BadRequest(&'static str),
    /// 414
    UriTooLong,
    /// 431
    HeadersTooLarge,
    /// 413
    BodyTooLarge,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
}

/// Parses a request head from the start of `buf`, recording its headers in `spans` (cleared
/// first, reused across requests). `Ok(None)` means more bytes are needed (and the limits so
/// far are kept).
pub fn parse<'b, 'h>(
    buf: &'b [u8],
    spans: &'h mut Vec<HeaderSpan>,
    limits: &Limits,
) -> Result<Option<Head<'b, 'h>>, HeadError> {
    let mut slots: [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            check_partial(buf, limits)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(e) => return Err(HeadError::BadRequest(httparse_reason(e))),
    };
    let method = request.method.ok_or(HeadError::BadRequest("no method"))?;
    let target = request.path.ok_or(HeadError::BadRequest("no target"))?;
    let minor_version = request.version.ok_or(HeadError::BadRequest("no version"))?;
    let headers: &[httparse::Header<'b>] = request.headers;
    if target.len() > limits.max_uri {
        return Err(HeadError::UriTooLong);
    }
    let line_len = buf.iter().position(|&b| b == b'\n').map_or(len, |i| i + 1);
    if len - line_len > limits.max_header_bytes + 2 {
        return Err(HeadError::HeadersTooLarge);
    }
    if !fields::is_accepted_method(method) {
        return Err(HeadError::BadRequest("a method outside the HTTP method registry"));
    }
    if fields::has_bare_lf(&buf[..len]) {
        return Err(HeadError::BadRequest("a line ending in a bare LF"));
    }
    let (target, authority) = request_target(method, target)?;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut host = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::BadRequest("differing Content-Length values"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding {
                // A second header appends to the list: "chunked, chunked" is chunked twice.
                return Err(HeadError::BadRequest("more than one Transfer-Encoding"));
            }
            transfer_encoding = true;
            let value = trim_ows(h.value);
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::BadRequest("unsupported transfer coding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(HeadError::BadRequest("more than one Host"));
            }
            let value = std::str::from_utf8(trim_ows(h.value))
                .map_err(|_| HeadError::BadRequest("Host is not ASCII"))?;
            if !is_authority(value) {
                return Err(HeadError::BadRequest("malformed Host"));
            }
            host = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            let (closes, keeps) = fields::connection_options(h.value);
            close |= closes;
            keep_alive_token |= keeps;
        } else if name.eq_ignore_ascii_case("expect") {
            if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HeadError::ExpectationFailed);
            }
        }
    }
    if transfer_encoding && content_length.is_some() {
        return Err(HeadError::BadRequest("both Content-Length and Transfer-Encoding"));
    }
    if transfer_encoding && minor_version == 0 {
        return Err(HeadError::BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if minor_version == 1 && host.is_none() {
        return Err(HeadError::BadRequest("HTTP/1.1 request without Host"));
    }
    if let Some(authority) = authority {
        // RFC 9112 §3.2.2: the target's authority names the host; a Host that says otherwise
        // is a request two servers would route differently.
        match host {
            Some(h) if !h.eq_ignore_ascii_case(authority) => {
                return Err(HeadError::BadRequest("Host differs from the target's authority"))
            }
            Some(_) => {}
            None => host = Some(authority),
        }
    }
    let framing = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::Empty,
        (false, Some(n)) if n > limits.max_body => return Err(HeadError::BodyTooLarge),
        (false, Some(n)) => Framing::Length(n),
    };
    let keep_alive = if minor_version == 1 { !close } else { keep_alive_token && !close };
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = (s.as_ptr() as usize - base) as u32;
        (start, start + s.len() as u32)
    };
    spans.clear();
    spans
        .extend(headers.iter().map(|h| HeaderSpan { name: range(h.name.as_bytes()), value: range(h.value) }));
    let headers = Headers { buf, spans };
    Ok(Some(Head {
        method,
        target,
        minor_version,
        headers,
        len,
        framing,
        keep_alive,
        expect_continue: expect_continue && framing != Framing::Empty,
        host,
    }))
}

/// A Host value or a target's authority: a name or address with an optional port, no
/// userinfo, no path, visible ASCII only.
fn is_authority(value: &str) -> bool {
    !value.is_empty() && !value.bytes().any(|b| b <= b' ' || b == b'/' || b == b'@' || b >= 0x7f)
}

/// The request target in origin form (what the gateway routes), and the authority when it
/// came in absolute form (RFC 9112 §3.2): origin-form as it is; absolute-form (`http://host/p`,
/// which a server must accept) as its path and query; asterisk-form for `OPTIONS` only (a
/// request about the server, which no route matches); authority-form and anything else are
/// refused. Raw bytes of 0x80 and above are never accepted: a target is ASCII, percent-encoded.
fn request_target<'b>(method: &str, target: &'b str) -> Result<(&'b str, Option<&'b str>), HeadError> {
    if target.bytes().any(|b| b >= 0x80) {
        return Err(HeadError::BadRequest("a raw byte of 0x80 or above in the request target"));
    }
    if target.starts_with('/') {
        return Ok((target, None));
    }
    if target == "*" {
        return match method {
            "OPTIONS" => Ok((target, None)),
            _ => Err(HeadError::BadRequest("asterisk-form is for OPTIONS only")),
        };
    }
    let scheme_end = target.find("://").ok_or(HeadError::BadRequest("request target in authority-form"))?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(HeadError::BadRequest("absolute-form target that is not http or https"));
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if !is_authority(authority) {
        return Err(HeadError::BadRequest("malformed authority in an absolute-form target"));
    }
    match path.as_bytes().first() {
        None => Ok(("/", Some(authority))),
        Some(b'/') => Ok((path, Some(authority))),
        Some(_) => Err(HeadError::BadRequest("absolute-form target without a path")),
    }
}

/// What is known of a head still arriving, so that a bad line is refused as soon as it is
/// complete, not when the head ends or the header timeout passes. Each byte is looked at
/// once: a client dripping a head one byte at a time costs no rescans.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Bytes of the head already checked (whole lines).
    checked: usize,
    seen_request_line: bool,
    content_length: Option<u64>,
    transfer_encoding: bool,
}

impl Progress {
    /// Checks the lines of `head` (the head so far, from its first byte) completed since the
    /// last call: CRLF endings, a registered method, and the framing headers (a valid
    /// `Content-Length` that agrees with any earlier one, never beside `Transfer-Encoding`).
    /// httparse has already refused what is malformed in the bytes so far.
    pub fn check(&mut self, head: &[u8]) -> Result<(), HeadError> {
        let result = self.check_lines(head);
        // A method is known to be wrong as soon as the space after it arrives, or as soon as
        // it is longer than the longest registered one (a look at a few bytes, never a rescan).
        if result.is_ok() && !self.seen_request_line {
            let rest = &head[self.checked..];
            let line = rest.strip_prefix(b"\r\n").unwrap_or(rest);
            let window = &line[..line.len().min(fields::LONGEST_METHOD + 1)];
            let method = match window.iter().position(|&b| b == b' ') {
                Some(space) => Some(&window[..space]),
                None if window.len() > fields::LONGEST_METHOD => Some(window),
                None => None,
            };
            if method.is_some_and(|m| !std::str::from_utf8(m).is_ok_and(fields::is_accepted_method)) {
                return Err(HeadError::BadRequest("a method outside the HTTP method registry"));
            }
        }
        result
    }

    fn check_lines(&mut self, head: &[u8]) -> Result<(), HeadError> {
        while let Some(i) = head[self.checked..].iter().position(|&b| b == b'\n') {
            let line = &head[self.checked..self.checked + i];
            self.checked += i + 1;
            let Some(line) = line.strip_suffix(b"\r") else {
                return Err(HeadError::BadRequest("a line ending in a bare LF"));
            };
            if !self.seen_request_line {
                // Empty lines before the request line are ignored (RFC 9112 §2.2).
                if !line.is_empty() {
                    self.seen_request_line = true;
                    let method = line.split(|&b| b == b' ').next().unwrap_or(b"");
                    if !std::str::from_utf8(method).is_ok_and(fields::is_accepted_method) {
                        return Err(HeadError::BadRequest("a method outside the HTTP method registry"));
                    }
                }
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_content_length(value)?;
                if self.content_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::BadRequest("differing Content-Length values"));
                }
                self.content_length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                self.transfer_encoding = true;
            }
            if self.transfer_encoding && self.content_length.is_some() {
                return Err(HeadError::BadRequest("both Content-Length and Transfer-Encoding"));
            }
        }
        Ok(())
    }
}

/// Applies the size limits to a head that has not been fully received yet, so an endless
/// request line or header section is refused as soon as it passes the limit.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), HeadError> {
    match buf.iter().position(|&b| b == b'\n') {
        // Method, spaces and "HTTP/1.1" add at most a few dozen bytes to the target.
        None if buf.len() > limits.max_uri + 64 => Err(HeadError::UriTooLong),
        Some(line_end) if buf.len() - line_end > limits.max_header_bytes + 2 => {
            Err(HeadError::HeadersTooLarge)
        }
        _ => Ok(()),
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    fields::content_length(value).map_err(|e| match e {
        FieldError::MalformedContentLength => HeadError::BadRequest("malformed Content-Length"),
        FieldError::DifferingContentLengths => HeadError::BadRequest("differing Content-Length values"),
    })
}

/// httparse's error as a short reason, for logs and tests (both parsers use it).
pub(super) fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "unsupported HTTP version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<Option<(Framing, bool, bool)>, HeadError> {
        let mut spans = Vec::new();
        parse(raw.as_bytes(), &mut spans, &Limits::default())
            .map(|h| h.map(|h| (h.framing, h.keep_alive, h.expect_continue)))
    }

    #[test]
    fn framing_and_keep_alive() {
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Some((Framing::Empty, true, false))));
        assert_eq!(
            check("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
            Ok(Some((Framing::Empty, false, false)))
        );
        assert_eq!(check("GET / HTTP/1.0\r\n\r\n"), Ok(Some((Framing::Empty, false, false))));
        assert_eq!(
            check("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            Ok(Some((Framing::Empty, true, false)))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some((Framing::Length(5), true, false)))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some((Framing::Length(5), true, false)))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n"),
            Ok(Some((Framing::Chunked, true, true)))
        );
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let bad = [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a@b/ HTTP/1.1\r\nHost: a@b\r\n\r\n",
            "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
            "MKCOLA / HTTP/1.1\r\nHost: a\r\n\r\n",
            "ANNOUNCE / HTTP/1.1\r\nHost: a\r\n\r\n",
            "get / HTTP/1.1\r\nHost: a\r\n\r\n",
            "PRI / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ];
        for raw in bad {
            assert!(matches!(check(raw), Err(HeadError::BadRequest(_))), "{raw:?} gave {:?}", check(raw));
        }
    }

    fn target(raw: &str) -> Result<(String, Option<String>), HeadError> {
        let mut spans = Vec::new();
        let head = parse(raw.as_bytes(), &mut spans, &Limits::default())?.expect("complete");
        Ok((head.target.to_string(), head.host.map(str::to_string)))
    }

    #[test]
    fn request_target_forms() {
        let t = |target: &str, host: &str| Ok((target.to_string(), Some(host.to_string())));
        assert_eq!(target("GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n"), t("/a?b", "h"));
        assert_eq!(target("GET http://h/a?b HTTP/1.1\r\nHost: h\r\n\r\n"), t("/a?b", "h"));
        assert_eq!(target("GET HTTP://H:8080 HTTP/1.1\r\nHost: h:8080\r\n\r\n"), t("/", "h:8080"));
        assert_eq!(target("GET https://h/x HTTP/1.0\r\n\r\n"), t("/x", "h"));
        assert_eq!(target("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), t("*", "h"));
        for method in super::fields::METHODS {
            let raw = format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n");
            assert!(target(&raw).is_ok(), "{method}");
            assert_eq!(refused_at(&raw), None, "{method} arriving byte by byte");
            assert!(method.len() <= super::fields::LONGEST_METHOD);
        }
    }

    /// Feeds `raw` one byte at a time as a head still arriving: the first byte at which it
    /// is refused, if any.
    fn refused_at(raw: &str) -> Option<usize> {
        let mut progress = Progress::default();
        let mut spans = Vec::new();
        (1..=raw.len()).find(|&n| {
            let bytes = &raw.as_bytes()[..n];
            match parse(bytes, &mut spans, &Limits::default()) {
                Err(_) => true,
                Ok(Some(_)) => false,
                Ok(None) => progress.check(bytes).is_err(),
            }
        })
    }

    #[test]
    fn a_bad_line_is_refused_as_soon_as_it_is_complete() {
        let line_ends = |raw: &str, line: &str| raw.find(line).map(|i| i + line.len());
        for (raw, bad_line) in [
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\nX: y", "99999\r\n"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\nX: y", ": 6\r\n"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX",
                "chunked\r\n",
            ),
            ("GET / HTTP/1.1\r\nHost: a\nX: y", "a\n"),
            ("MKCOLA / HTTP/1.1\r\nHost: a", "MKCOLA "),
            ("\r\nANNOUNCE / HTTP/1.1\r\n", "ANNOUNCE "),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n", "AAAAAAAAAAAAAAAAAA"),
        ] {
            let at = refused_at(raw).unwrap_or_else(|| panic!("never refused: {raw:?}"));
            assert!(at <= line_ends(raw, bad_line).unwrap(), "{raw:?} refused only at byte {at}");
        }
        assert_eq!(
            refused_at("\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n"),
            None
        );
    }

    #[test]
    fn limits() {
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(10_240));
        assert_eq!(check(&long_uri), Err(HeadError::UriTooLong));
        let partial_uri = format!("GET /{}", "a".repeat(10_400));
        assert_eq!(check(&partial_uri), Err(HeadError::UriTooLong));
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(10_240));
        assert_eq!(check(&big), Err(HeadError::HeadersTooLarge));
        let partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(10_300));
        assert_eq!(check(&partial), Err(HeadError::HeadersTooLarge));
        let many: String = (0..101).map(|i| format!("X{i}: v\r\n")).collect();
        assert_eq!(
            check(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Err(HeadError::HeadersTooLarge)
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10485761\r\n\r\n"),
            Err(HeadError::BodyTooLarge)
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"),
            Err(HeadError::ExpectationFailed)
        );
    }
}
