//! What both planes read out of an X.509 certificate, in the forms AWS shows them: the control
//! plane checks a `Certificate` object's names and expiry, the data plane fills
//! `$context.identity.clientCert.*` from a client's certificate. Pure: DER in, text out.

use crate::quota::civil_from_days;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// The fields of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// As AWS prints it: `C=US,ST=Washington,O=Example,CN=My Client`, in the order of the
    /// certificate, without spaces after the commas.
    pub subject: String,
    pub issuer: String,
    /// Decimal when it fits in 128 bits (AWS shows `1` for serial 1), else colon-separated hex.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names of the subject alternative names, lowercase (the common name when there
    /// are none, as old certificates have it).
    pub dns_names: Vec<String>,
}

/// Reads the fields of a DER certificate.
pub fn facts(der: &[u8]) -> Result<Facts, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut dns_names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("unreadable subject alternative names: {e}")),
    };
    if dns_names.is_empty() {
        let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok());
        dns_names.extend(cn.map(|cn| cn.to_ascii_lowercase()));
    }
    let raw_serial = cert.raw_serial();
    let significant: &[u8] = {
        let start = raw_serial.iter().position(|b| *b != 0).unwrap_or(raw_serial.len());
        &raw_serial[start..]
    };
    let serial = if significant.len() <= 16 {
        significant.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b)).to_string()
    } else {
        significant.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    };
    Ok(Facts {
        subject: distinguished_name(cert.subject()),
        issuer: distinguished_name(cert.issuer()),
        serial,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    })
}

fn distinguished_name(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in name.iter() {
        for attribute in rdn.iter() {
            let oid = attribute.attr_type();
            let key = x509_parser::objects::oid2abbrev(oid, registry)
                .map(str::to_string)
                .unwrap_or_else(|_| oid.to_id_string());
            let key = match key.as_str() {
                // The registry's long names for what OpenSSL and AWS abbreviate.
                "stateOrProvinceName" => "ST".to_string(),
                "localityName" => "L".to_string(),
                "emailAddress" => "emailAddress".to_string(),
                _ => key,
            };
            let value = attribute.as_str().map(str::to_string).unwrap_or_else(|_| "?".into());
            parts.push(format!("{key}={value}"));
        }
    }
    parts.join(",")
}

/// A time as OpenSSL and AWS print certificate validity: `Aug  5 00:28:21 2120 GMT`.
pub fn openssl_time(unix_s: i64) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d) = civil_from_days(unix_s.div_euclid(86_400));
    let secs = unix_s.rem_euclid(86_400);
    format!(
        "{} {d:>2} {:02}:{:02}:{:02} {y} GMT",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// True when a certificate or domain name covers `host`: equal ignoring case, or a wildcard
/// `*.example.com` for exactly one more label (`a.example.com`, not `a.b.example.com` nor
/// `example.com`), as RFC 6125 and AWS's wildcard custom domains have it.
pub fn name_covers(name: &str, host: &str) -> bool {
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = name.strip_prefix("*.") else { return false };
    match host.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
        None => false,
    }
}

/// The wildcard name that would cover `host` (`a.example.com` → `*.example.com`).
pub fn wildcard_of(host: &str) -> Option<String> {
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && rest.contains('.')).then(|| format!("*.{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_openssl_does() {
        // From AWS's example event: "Aug  5 00:28:21 2120 GMT" and "Aug 29 00:28:21 2020 GMT".
        assert_eq!(openssl_time(1_598_660_901), "Aug 29 00:28:21 2020 GMT");
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_covers("*.example.com", "a.example.com"));
        assert!(name_covers("API.example.com", "api.EXAMPLE.com"));
        assert!(!name_covers("*.example.com", "a.b.example.com"));
        assert!(!name_covers("*.example.com", "example.com"));
        assert!(!name_covers("*.example.com", ".example.com"));
        assert_eq!(wildcard_of("a.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(wildcard_of("example.com"), None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(facts(b"not a certificate").is_err());
    }
}
