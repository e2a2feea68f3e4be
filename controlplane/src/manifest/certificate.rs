//! `kind: Certificate`: a PEM certificate chain and its private key, for the HTTPS listener.
//! Each may be inline or a file the control plane reads on its own machine at every apply
//! (where certbot writes, say), so re-applying the same manifest after a renewal picks up the
//! new files. The key is never printed: `get` and `diff` show a fingerprint instead.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Certificate {
    pub kind: String,
    pub name: String,
    /// PEM: the leaf first, then its intermediates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
    /// PEM: PKCS#8, SEC1 (EC) or PKCS#1 (RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// Served to a handshake whose server name (SNI) no domain with a certificate has, or that
    /// sends none. At most one certificate is the default.
    #[serde(default)]
    pub default: bool,
}

impl Certificate {
    /// The object as `get` and `diff` show it: the private key replaced by the start of its
    /// SHA-256, so a changed key shows as changed and the key itself never leaves.
    pub fn redacted(&self) -> Certificate {
        use sha2::{Digest, Sha256};
        let private_key = self.private_key.as_ref().map(|k| {
            let digest = Sha256::digest(k.trim().as_bytes());
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("(redacted, sha256:{hex})")
        });
        Certificate { private_key, ..self.clone() }
    }

    /// One line for `controlctl get`: the names and validity of the leaf certificate.
    pub fn summary(&self) -> String {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let leaf =
            self.certificate.as_deref().and_then(|pem| CertificateDer::pem_slice_iter(pem.as_bytes()).next());
        match leaf.and_then(|der| der.ok()).map(|der| proto::certificate::facts(&der)) {
            Some(Ok(f)) => format!(
                "names={} notAfter={} expires_unix={}{}",
                f.dns_names.join(","),
                proto::certificate::openssl_time(f.not_after),
                f.not_after,
                if self.default { " default" } else { "" }
            ),
            Some(Err(e)) => e,
            None => "no certificate".into(),
        }
    }
}
