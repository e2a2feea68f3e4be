//! Header-field rules both sides share: the request parser ([`super::head`]), the upstream
//! response parser ([`super::response_head`]) and the proxy that forwards headers between them.
//! Each rule exists once, here, with its tests.

/// Why a field value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    MalformedContentLength,
    DifferingContentLengths,
}

/// A `Content-Length` value: digits only (at most 19, so it fits in 64 bits), or a list of
/// identical such values (`5, 5`, which RFC 9110 §8.6 allows a recipient to accept).
pub fn content_length(value: &[u8]) -> Result<u64, FieldError> {
    let mut result: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let digits = trim_ows(part);
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FieldError::MalformedContentLength);
        }
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|prev| prev != n) {
            return Err(FieldError::DifferingContentLengths);
        }
        result = Some(n);
    }
    result.ok_or(FieldError::MalformedContentLength)
}

/// `s` without optional whitespace (space, tab) at either end.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The tokens of a comma-separated list value, trimmed, empty ones skipped.
pub fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|t| !t.is_empty())
}

/// What a `Connection` header says: `(close, keep-alive)`.
pub fn connection_options(value: &[u8]) -> (bool, bool) {
    let (mut close, mut keep_alive) = (false, false);
    for token in list_tokens(value) {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

/// True when a line of `head` ends in a bare LF, without the CR before it. RFC 9112 §2.2 lets
/// a recipient accept one, but a parser that does and a backend that does not disagree about
/// where a line ends, which is how one message becomes two; so both sides refuse it.
pub fn has_bare_lf(head: &[u8]) -> bool {
    let mut rest = head;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        if i == 0 || rest[i - 1] != b'\r' {
            return true;
        }
        rest = &rest[i + 1..];
    }
    false
}

/// The request methods the gateway accepts: the IANA HTTP Method Registry, less `CONNECT`
/// (the gateway is no tunnel) and `PRI` (the HTTP/2 preface). An `ANY` route matches these.
pub const METHODS: [&str; 37] = [
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "REBIND",
    "REPORT",
    "SEARCH",
    "TRACE",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

/// Bytes of the longest method in [`METHODS`] (`UPDATEREDIRECTREF`).
pub const LONGEST_METHOD: usize = 17;

/// True for a method in [`METHODS`] (methods are case-sensitive).
pub fn is_accepted_method(method: &str) -> bool {
    matches!(method, "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH")
        || METHODS.contains(&method)
}

/// True when `name` is listed in a `Connection` header's value (and so is hop-by-hop).
pub fn named_by_connection(connection: Option<&[u8]>, name: &[u8]) -> bool {
    connection.is_some_and(|value| list_tokens(value).any(|token| token.eq_ignore_ascii_case(name)))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), which a proxy
/// never forwards in either direction.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
    ];
    NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// An IP address as text (for `X-Forwarded-For` and access logs), formatted into `buf`
/// without allocating.
pub fn format_ip<'b>(ip: &std::net::IpAddr, buf: &'b mut [u8; 64]) -> &'b [u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let n = cursor.position() as usize;
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_that_fit() {
        assert_eq!(content_length(b"0"), Ok(0));
        assert_eq!(content_length(b" 42\t"), Ok(42));
        assert_eq!(content_length(b"5, 5"), Ok(5));
        assert_eq!(content_length(b"9999999999999999999"), Ok(9_999_999_999_999_999_999));
        assert_eq!(content_length(b"5, 6"), Err(FieldError::DifferingContentLengths));
        for bad in [&b""[..], b"+5", b"-1", b"0x10", b"5 5", b"1e3", b"18446744073709551616", b"5,"] {
            assert_eq!(content_length(bad), Err(FieldError::MalformedContentLength), "{bad:?}");
        }
    }

    #[test]
    fn connection_tokens_and_hop_by_hop_names() {
        assert_eq!(connection_options(b"Keep-Alive, Upgrade"), (false, true));
        assert_eq!(connection_options(b" close "), (true, false));
        assert_eq!(connection_options(b",,"), (false, false));
        assert!(named_by_connection(Some(b"keep-alive, X-Drop"), b"x-drop"));
        assert!(!named_by_connection(Some(b"keep-alive"), b"x-drop"));
        assert!(!named_by_connection(None, b"x-drop"));
        assert!(is_hop_by_hop(b"Transfer-Encoding") && is_hop_by_hop(b"TE") && !is_hop_by_hop(b"x-te"));
    }
}
