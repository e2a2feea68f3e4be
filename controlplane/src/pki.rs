//! The control plane's own certificates, made on its first start (or by `controlplane init`)
//! under `DATA_DIR/pki/`: a CA (`ca.pem`, which clients and data planes trust) and the gRPC
//! port's server certificate, signed by it, for `localhost`, `127.0.0.1`, `::1`, the host's
//! name and every `--tls-san`. The server certificate is made again when the names asked for
//! change or it comes within 30 days of expiry; the CA stays. Keys are readable by the owner
//! only.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

const CA_NAME: &str = "gateway control plane CA";
const DAY: i64 = 86_400;

/// Valid from the day of `from` to the day of `to` (Unix seconds).
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    let day = |unix_s: i64| {
        let (y, m, d) = proto::quota::civil_from_days(unix_s.div_euclid(DAY));
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = day(from);
    params.not_after = day(to);
}

fn ca_params(now: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, now - DAY, now + 3650 * DAY);
    params
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    proto::durable_file::write(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The names the server certificate is for.
pub fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim().to_ascii_lowercase();
        if !host.is_empty() {
            names.push(host);
        }
    }
    names.extend(extra.iter().map(|n| n.to_ascii_lowercase()));
    names.sort();
    names.dedup();
    names
}

/// Loads the certificates under `data_dir/pki`, making what is missing or stale.
pub fn ensure(data_dir: &Path, names: &[String], now: i64) -> Result<Pki, String> {
    let dir = data_dir.join("pki");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (ca_pem_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_key = match read(&ca_key_path)? {
        Some(pem) => KeyPair::from_pem(&pem).map_err(|e| format!("{}: {e}", ca_key_path.display()))?,
        None => {
            let key = KeyPair::generate().map_err(|e| e.to_string())?;
            let ca = ca_params(now).self_signed(&key).map_err(|e| e.to_string())?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_private(&ca_pem_path, &ca.pem())?;
            log::info!("made a CA for the control plane: {}", ca_pem_path.display());
            key
        }
    };
    let ca_pem = read(&ca_pem_path)?.ok_or_else(|| format!("{} is missing", ca_pem_path.display()))?;
    let (cert_path, key_path, names_path) =
        (dir.join("server.pem"), dir.join("server.key"), dir.join("server.names"));
    let wanted = names.join("\n");
    let current = match (read(&cert_path)?, read(&key_path)?, read(&names_path)?) {
        (Some(cert), Some(key), Some(stored)) if stored == wanted && !near_expiry(&cert, now) => {
            Some((cert, key))
        }
        _ => None,
    };
    let (server_cert_pem, server_key_pem) = match current {
        Some(pair) => pair,
        None => {
            // The issuer is the same name and key as the stored CA, so what it signs chains to
            // `ca.pem`.
            let issuer = ca_params(now).self_signed(&ca_key).map_err(|e| e.to_string())?;
            let mut params = CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
            params.distinguished_name.push(DnType::CommonName, "gateway control plane");
            set_validity(&mut params, now - DAY, now + 397 * DAY);
            let key = KeyPair::generate().map_err(|e| e.to_string())?;
            let cert = params.signed_by(&key, &issuer, &ca_key).map_err(|e| e.to_string())?;
            write_private(&key_path, &key.serialize_pem())?;
            write_private(&cert_path, &cert.pem())?;
            write_private(&names_path, &wanted)?;
            log::info!("made the control plane's server certificate for {}", names.join(", "));
            (cert.pem(), key.serialize_pem())
        }
    };
    Ok(Pki { dir, ca_pem, server_cert_pem, server_key_pem })
}

fn near_expiry(pem: &str, now: i64) -> bool {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(pem.as_bytes()).next() else { return true };
    proto::certificate::facts(&der).map_or(true, |f| f.not_after - now < 30 * DAY)
}

/// A client certificate for a data plane named `name`, signed by the CA under `data_dir`
/// (which must exist: the control plane has started once, or `init` ran). It says
/// `OU=gateway-dataplane`, which lets it in with the `dataplane` role and nothing else. It
/// cannot be revoked one by one: a data plane that must be shut out gets a token instead.
pub fn issue_dataplane(data_dir: &Path, name: &str, now: i64) -> Result<(String, String), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("a data plane's name is letters, digits, '-', '_' and '.'".into());
    }
    let key_path = data_dir.join("pki/ca.key");
    let ca_key_pem = read(&key_path)?.ok_or_else(|| {
        format!("{} is missing: start the control plane once, or run init", key_path.display())
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let issuer = ca_params(now).self_signed(&ca_key).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationalUnitName, crate::auth::DATAPLANE_UNIT);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut params, now - DAY, now + 397 * DAY);
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, &issuer, &ca_key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}
