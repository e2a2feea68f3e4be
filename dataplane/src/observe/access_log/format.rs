//! Renders one access log line from a stage's compiled format. Pure and allocation-free: it
//! appends to the shard's buffer. Values are escaped so a line stays one line and a JSON
//! format stays JSON (`"` and `\` get a backslash, control bytes become `\xNN`); a value the
//! request does not have is `-`, as in AWS.

use crate::gateway_error::Kind;
use proto::table::{ArchivedLogPart, ArchivedLogVar};
use std::net::IpAddr;

/// What a line can say about its request.
pub struct Line<'a> {
    pub request_id: &'a [u8],
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a [u8]>,
    pub api_key_id: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub resource_path: Option<&'a str>,
    pub route_key: Option<&'a str>,
    pub stage: &'a str,
    pub api: &'a str,
    pub domain: Option<&'a str>,
    pub http10: bool,
    pub status: u16,
    pub response_length: u64,
    pub latency_ms: u64,
    /// The integration's latency in ms and its status (0 if it gave none).
    pub integration: Option<(u64, u16)>,
    /// `01/Dec/2026:09:54:12 +0000`.
    pub request_time: &'a [u8],
    pub request_time_epoch_ms: u64,
    pub xray_trace_id: &'a [u8],
    pub error: Option<Kind>,
    /// The client's certificate, under mutual TLS.
    pub client_cert: Option<&'a crate::tls::ClientCert>,
}

pub fn render(format: &[ArchivedLogPart], line: &Line<'_>, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    for part in format {
        let var = match part {
            ArchivedLogPart::Literal(text) => {
                out.extend_from_slice(text.as_bytes());
                continue;
            }
            ArchivedLogPart::Var(var) => *var,
        };
        match var {
            ArchivedLogVar::RequestId | ArchivedLogVar::ExtendedRequestId => {
                out.extend_from_slice(line.request_id)
            }
            ArchivedLogVar::SourceIp => {
                let mut ip = [0u8; 64];
                out.extend_from_slice(crate::http1::fields::format_ip(&line.source_ip, &mut ip));
            }
            ArchivedLogVar::UserAgent => value(out, line.user_agent),
            ArchivedLogVar::ApiKeyId => value(out, line.api_key_id.map(str::as_bytes)),
            ArchivedLogVar::HttpMethod => escaped(out, line.method.as_bytes()),
            ArchivedLogVar::Path => escaped(out, line.path.as_bytes()),
            ArchivedLogVar::ResourcePath => value(out, line.resource_path.map(str::as_bytes)),
            ArchivedLogVar::RouteKey => value(out, line.route_key.map(str::as_bytes)),
            ArchivedLogVar::Stage => escaped(out, line.stage.as_bytes()),
            ArchivedLogVar::ApiId => escaped(out, line.api.as_bytes()),
            ArchivedLogVar::DomainName => value(out, line.domain.map(str::as_bytes)),
            ArchivedLogVar::Protocol => {
                out.extend_from_slice(if line.http10 { b"HTTP/1.0" } else { b"HTTP/1.1" })
            }
            ArchivedLogVar::Status => out.extend_from_slice(n.format(line.status).as_bytes()),
            ArchivedLogVar::ResponseLength => {
                out.extend_from_slice(n.format(line.response_length).as_bytes())
            }
            ArchivedLogVar::ResponseLatency => out.extend_from_slice(n.format(line.latency_ms).as_bytes()),
            ArchivedLogVar::IntegrationLatency => match line.integration {
                Some((ms, _)) => out.extend_from_slice(n.format(ms).as_bytes()),
                None => out.push(b'-'),
            },
            ArchivedLogVar::IntegrationStatus => match line.integration {
                Some((_, status)) if status != 0 => out.extend_from_slice(n.format(status).as_bytes()),
                _ => out.push(b'-'),
            },
            ArchivedLogVar::RequestTime => out.extend_from_slice(line.request_time),
            ArchivedLogVar::RequestTimeEpoch => {
                out.extend_from_slice(n.format(line.request_time_epoch_ms).as_bytes())
            }
            ArchivedLogVar::XrayTraceId => value(out, Some(line.xray_trace_id).filter(|v| !v.is_empty())),
            ArchivedLogVar::ErrorMessage => value(out, line.error.map(|k| k.message())),
            ArchivedLogVar::ErrorResponseType => value(out, line.error.map(|k| k.response_type().as_bytes())),
            ArchivedLogVar::ClientCertPem => value(out, line.client_cert.map(|c| c.pem.as_bytes())),
            ArchivedLogVar::ClientCertSubjectDn => {
                value(out, line.client_cert.map(|c| c.facts.subject.as_bytes()))
            }
            ArchivedLogVar::ClientCertIssuerDn => {
                value(out, line.client_cert.map(|c| c.facts.issuer.as_bytes()))
            }
            ArchivedLogVar::ClientCertSerialNumber => {
                value(out, line.client_cert.map(|c| c.facts.serial.as_bytes()))
            }
            ArchivedLogVar::ClientCertNotBefore => {
                value(out, line.client_cert.map(|c| c.not_before.as_bytes()))
            }
            ArchivedLogVar::ClientCertNotAfter => {
                value(out, line.client_cert.map(|c| c.not_after.as_bytes()))
            }
        }
    }
}

fn value(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => escaped(out, v),
        None => out.push(b'-'),
    }
}

fn escaped(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in v {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            }
            _ => out.push(b),
        }
    }
}

/// `dd/Mon/yyyy:HH:MM:SS +0000` for a Unix second (AWS's `$context.requestTime`).
pub fn request_time(unix_s: i64) -> [u8; 26] {
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let (y, m, d) = proto::quota::civil_from_days(unix_s.div_euclid(86_400));
    let s = unix_s.rem_euclid(86_400);
    let mut out = *b"00/Jan/0000:00:00:00 +0000";
    let two = |out: &mut [u8], v: i64| {
        out[0] = b'0' + (v / 10) as u8;
        out[1] = b'0' + (v % 10) as u8;
    };
    two(&mut out[0..2], i64::from(d));
    out[3..6].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y.clamp(0, 9999);
    two(&mut out[7..9], y / 100);
    two(&mut out[9..11], y % 100);
    two(&mut out[12..14], s / 3600);
    two(&mut out[15..17], s / 60 % 60);
    two(&mut out[18..20], s % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times_are_clf() {
        assert_eq!(&request_time(0), b"01/Jan/1970:00:00:00 +0000");
        // 2026-12-01T09:54:12Z
        assert_eq!(&request_time(1_796_118_852), b"01/Dec/2026:09:54:12 +0000");
        assert_eq!(&request_time(951_782_400), b"29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn values_are_escaped_to_stay_one_line() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\"b\\c\nd\x7f");
        assert_eq!(out, b"a\\\"b\\\\c\\x0ad\\x7f");
    }
}
