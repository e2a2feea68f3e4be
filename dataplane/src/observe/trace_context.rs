//! Tracing headers: W3C `traceparent` and AWS `X-Amzn-Trace-Id`. A client's valid header is
//! forwarded untouched; a missing one (or a malformed `traceparent`, which W3C says to
//! restart) is generated, so every proxied request carries both and the access log can name
//! the trace.

use crate::http1::head::Head;

/// `00-<32 hex trace id>-<16 hex parent id>-01`.
pub const TRACEPARENT_LEN: usize = 55;
/// `Root=1-<8 hex epoch seconds>-<24 hex>`.
pub const XRAY_LEN: usize = 40;

/// The two headers of one request: `None` where the client's own header is forwarded.
pub struct TraceContext {
    pub traceparent: Option<[u8; TRACEPARENT_LEN]>,
    pub xray: Option<[u8; XRAY_LEN]>,
}

impl TraceContext {
    /// What the request needs generated, from its headers, `random` bits and the time.
    pub fn of(head: &Head<'_, '_>, mut random: impl FnMut() -> u64, unix_s: u64) -> TraceContext {
        let traceparent = match head.headers.get("traceparent") {
            Some(value) if valid_traceparent(value) => None,
            _ => {
                let mut v = [0u8; TRACEPARENT_LEN];
                v[..3].copy_from_slice(b"00-");
                hex(&mut v[3..19], random());
                hex(&mut v[19..35], random() | 1); // an all-zero trace id is invalid
                v[35] = b'-';
                hex(&mut v[36..52], random() | 1);
                v[52..].copy_from_slice(b"-01");
                Some(v)
            }
        };
        let xray = match head.headers.get("x-amzn-trace-id") {
            Some(value) if !value.is_empty() => None,
            _ => {
                let mut v = [0u8; XRAY_LEN];
                v[..7].copy_from_slice(b"Root=1-");
                hex(&mut v[7..15], unix_s << 32);
                v[15] = b'-';
                hex(&mut v[16..32], random());
                hex(&mut v[32..40], random() << 32);
                Some(v)
            }
        };
        TraceContext { traceparent, xray }
    }

    /// The X-Ray trace id (`Root=...`) this request travels under.
    pub fn xray<'a>(&'a self, head: &Head<'a, '_>) -> &'a [u8] {
        match &self.xray {
            Some(generated) => generated,
            None => head.headers.get("x-amzn-trace-id").unwrap_or_default(),
        }
    }
}

/// Writes the top `out.len() * 4` bits of `n` as lowercase hex.
fn hex(out: &mut [u8], n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// W3C trace-context: version 00, 32 and 16 lowercase hex digits, neither all zero, 2 hex of
/// flags.
fn valid_traceparent(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    if value.len() < TRACEPARENT_LEN || !value.starts_with(b"00-") {
        return false;
    }
    let lower_hex = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let (trace, parent, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    value[35] == b'-'
        && value[52] == b'-'
        && value.len() == TRACEPARENT_LEN
        && lower_hex(trace)
        && lower_hex(parent)
        && lower_hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::head::{self, Limits};

    fn context(headers: &str) -> (TraceContext, String) {
        let raw = format!("GET / HTTP/1.1\r\nhost: h\r\n{headers}\r\n");
        let mut spans = Vec::new();
        let head = head::parse(raw.as_bytes(), &mut spans, &Limits::default()).unwrap().unwrap();
        let mut n = 0x0123_4567_89ab_cdefu64;
        let ctx = TraceContext::of(
            &head,
            || {
                n = n.rotate_left(8);
                n
            },
            0x5f84_c7a1,
        );
        let xray = String::from_utf8(ctx.xray(&head).to_vec()).unwrap();
        (ctx, xray)
    }

    #[test]
    fn missing_headers_are_generated_in_their_formats() {
        let (ctx, xray) = context("");
        let tp = String::from_utf8(ctx.traceparent.unwrap().to_vec()).unwrap();
        assert!(valid_traceparent(tp.as_bytes()), "{tp}");
        assert!(xray.starts_with("Root=1-5f84c7a1-") && xray.len() == XRAY_LEN, "{xray}");
        assert!(xray[16..].bytes().all(|b| b.is_ascii_hexdigit()), "{xray}");
    }

    #[test]
    fn valid_client_headers_are_kept_and_bad_traceparents_replaced() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (ctx, xray) =
            context(&format!("traceparent: {good}\r\nX-Amzn-Trace-Id: Root=1-abc-def;Parent=1\r\n"));
        assert!(ctx.traceparent.is_none() && ctx.xray.is_none());
        assert_eq!(xray, "Root=1-abc-def;Parent=1");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert!(context(&format!("traceparent: {bad}\r\n")).0.traceparent.is_some(), "{bad}");
        }
    }
}
