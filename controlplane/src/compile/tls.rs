//! `Certificate` objects and the HTTPS settings of domains: PEM read into DER, each key checked
//! against its certificate, each domain's name checked against its certificate's names, and
//! AWS's security policy names. No clock: an expired certificate compiles (a stored state must
//! keep compiling as time passes); its expiry is a metric and shows in `controlctl get`.

use super::common::{valid_name, Errors};
use crate::manifest::{self, Located, Manifest};
use proto::table::{Certificate, DomainTls, KeyFormat, TlsPolicy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;

/// What the certificates compile to: the table's list, the default's index, and for each
/// certificate (by lowercase name) its index and DNS names.
pub struct Compiled {
    pub certificates: Vec<Certificate>,
    pub default: Option<u32>,
    by_name: HashMap<String, (u32, Vec<String>)>,
}

pub fn compile_certificates(manifest: &Manifest, errors: &mut Errors) -> Compiled {
    let mut out = Compiled { certificates: Vec::new(), default: None, by_name: HashMap::new() };
    let mut docs: Vec<&Located<manifest::Certificate>> = manifest.certificates.iter().collect();
    docs.sort_by(|a, b| a.value.name.cmp(&b.value.name));
    for doc in docs {
        let c = &doc.value;
        if !valid_name(&c.name) {
            errors.at(doc, "name", "use letters, digits, '-' and '_' (at most 128)");
            continue;
        }
        if out.by_name.contains_key(&c.name.to_ascii_lowercase()) {
            errors.at(doc, "name", format!("a second Certificate '{}'", c.name));
            continue;
        }
        let Some((certificate, names)) = certificate_of(doc, errors) else { continue };
        let index = out.certificates.len() as u32;
        if c.default {
            if out.default.is_some() {
                errors.at(doc, "default", "a second default Certificate; at most one is the default");
                continue;
            }
            out.default = Some(index);
        }
        out.by_name.insert(c.name.to_ascii_lowercase(), (index, names));
        out.certificates.push(certificate);
    }
    out
}

fn certificate_of(
    doc: &Located<manifest::Certificate>,
    errors: &mut Errors,
) -> Option<(Certificate, Vec<String>)> {
    let c = &doc.value;
    let Some(pem) = c.certificate.as_deref() else {
        errors.at(doc, "certificate", "missing: give certificate (PEM) or certificateFile");
        return None;
    };
    let Some(key_pem) = c.private_key.as_deref() else {
        errors.at(doc, "privateKey", "missing: give privateKey (PEM) or privateKeyFile");
        return None;
    };
    let chain = match read_chain(pem) {
        Ok(chain) => chain,
        Err(e) => {
            errors.at(doc, field(doc, "certificate"), e);
            return None;
        }
    };
    // The key's own parse errors could quote it: say only what is wrong.
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) else {
        errors.at(doc, field(doc, "privateKey"), "no PEM private key (PKCS#8, EC or RSA) found");
        return None;
    };
    let facts = match proto::certificate::facts(&chain[0]) {
        Ok(f) => f,
        Err(e) => {
            errors.at(doc, field(doc, "certificate"), e);
            return None;
        }
    };
    let key_format = match &key {
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
        _ => KeyFormat::Pkcs8,
    };
    let signer = match rustls::crypto::ring::sign::any_supported_type(&key) {
        Ok(signer) => signer,
        Err(_) => {
            errors.at(
                doc,
                field(doc, "privateKey"),
                "an unsupported key (use ECDSA P-256/P-384, RSA or Ed25519)",
            );
            return None;
        }
    };
    let chain_der: Vec<CertificateDer<'static>> =
        chain.iter().map(|d| CertificateDer::from(d.clone())).collect();
    if rustls::sign::CertifiedKey::new(chain_der, signer).keys_match().is_err() {
        errors.at(doc, field(doc, "privateKey"), "the private key does not belong to the certificate");
        return None;
    }
    let certificate = Certificate {
        name: c.name.clone(),
        chain,
        key: key.secret_der().to_vec(),
        key_format,
        not_after: facts.not_after,
    };
    Some((certificate, facts.dns_names))
}

/// The field an error is about: the file field when the content came from a file.
fn field(doc: &Located<manifest::Certificate>, inline: &'static str) -> &'static str {
    match inline {
        "certificate" if doc.value.certificate_file.is_some() => "certificateFile",
        "privateKey" if doc.value.private_key_file.is_some() => "privateKeyFile",
        other => other,
    }
}

/// Every certificate of a PEM text, as DER, leaf first; at least one.
pub(super) fn read_chain(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match item {
            Ok(der) => chain.push(der.to_vec()),
            Err(e) => return Err(format!("unreadable PEM: {e}")),
        }
    }
    if chain.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
    }
    Ok(chain)
}

/// A domain's HTTPS settings, checked against the certificates.
pub fn compile_domain_tls(
    doc: &Located<manifest::Domain>,
    host: &str,
    certificates: &Compiled,
    errors: &mut Errors,
) -> Option<DomainTls> {
    let d = &doc.value;
    let Some(name) = &d.certificate else {
        if d.security_policy.is_some() || d.mutual_tls.is_some() {
            let at = if d.security_policy.is_some() { "securityPolicy" } else { "mutualTls" };
            errors.at(doc, at, "needs a certificate: name the domain's Certificate");
        }
        return None;
    };
    let Some((index, names)) = certificates.by_name.get(&name.to_ascii_lowercase()) else {
        errors.at(doc, "certificate", format!("no Certificate named '{name}'"));
        return None;
    };
    // The names must cover the domain: a wildcard domain needs the same wildcard.
    let covered = names
        .iter()
        .any(|n| n == host || (!host.starts_with("*.") && proto::certificate::name_covers(n, host)));
    if !covered {
        errors.at(
            doc,
            "certificate",
            format!("Certificate '{name}' is for {}, not for '{host}'", names.join(", ")),
        );
        return None;
    }
    let policy = match d.security_policy.as_deref().unwrap_or("TLS_1_2") {
        "TLS_1_2" => TlsPolicy::Tls12,
        "TLS_1_3" => TlsPolicy::Tls13,
        "TLS_1_0" => {
            errors.at(
                doc,
                "securityPolicy",
                "TLS_1_0 is not offered: TLS 1.0 and 1.1 are not spoken here; use TLS_1_2 or TLS_1_3",
            );
            return None;
        }
        other => {
            errors.at(doc, "securityPolicy", format!("unknown policy '{other}'; one of TLS_1_2, TLS_1_3"));
            return None;
        }
    };
    let truststore = match &d.mutual_tls {
        None => Vec::new(),
        Some(m) => {
            let at =
                if m.truststore_file.is_some() { "mutualTls.truststoreFile" } else { "mutualTls.truststore" };
            let Some(pem) = m.truststore.as_deref() else {
                errors.at(doc, "mutualTls.truststore", "missing: give truststore (PEM) or truststoreFile");
                return None;
            };
            let cas = match read_chain(pem) {
                Ok(cas) => cas,
                Err(e) => {
                    errors.at(doc, at, e);
                    return None;
                }
            };
            let mut roots = rustls::RootCertStore::empty();
            for ca in &cas {
                if let Err(e) = roots.add(CertificateDer::from(ca.clone())) {
                    errors.at(doc, at, format!("a truststore certificate is not usable as a CA: {e}"));
                    return None;
                }
            }
            cas
        }
    };
    Some(DomainTls { certificate: *index, policy, truststore })
}
