//! Files a manifest names instead of inlining them (`certificateFile`, `privateKeyFile`,
//! `mutualTls.truststoreFile`), as kubectl reads `--from-file`: `controlctl` reads them on the
//! operator's machine, relative to the manifest that names them, and sends them along with the
//! manifests; the control plane never reads a path it was sent. [`inline`] puts each file's
//! content in its inline field, keeping the path for the record.

use super::{Located, Manifest, ManifestError};
use std::collections::BTreeMap;
use std::path::Path;

/// File contents by [`resolve`]d path.
pub type Attachments = BTreeMap<String, String>;

/// Where a path written in `manifest_file` points: as written when absolute, else beside the
/// manifest. Both sides compute it the same way from the same strings.
pub fn resolve(manifest_file: &str, written: &str) -> String {
    let written_path = Path::new(written);
    if written_path.is_absolute() {
        return written.to_string();
    }
    match Path::new(manifest_file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(written_path).display().to_string(),
        _ => written.to_string(),
    }
}

/// Every file the manifest names, resolved.
pub fn referenced(manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for c in &manifest.certificates {
        for written in [&c.value.certificate_file, &c.value.private_key_file].into_iter().flatten() {
            out.push(resolve(&c.file, written));
        }
    }
    for d in &manifest.domains {
        if let Some(written) = d.value.mutual_tls.as_ref().and_then(|m| m.truststore_file.as_ref()) {
            out.push(resolve(&d.file, written));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads every referenced file from disk (the client side).
pub fn read_referenced(manifest: &Manifest) -> Result<Attachments, Vec<ManifestError>> {
    let mut files = Attachments::new();
    let mut errors = Vec::new();
    for path in referenced(manifest) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                files.insert(path, text);
            }
            Err(e) => errors.push(ManifestError {
                file: path.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Fills each inline field from its file; a field given both ways, or a file not among
/// `files`, is an error at the field.
pub fn inline(manifest: &mut Manifest, files: &Attachments, errors: &mut Vec<ManifestError>) {
    fn fill<T>(
        doc: &Located<T>,
        inline: &mut Option<String>,
        file: &Option<String>,
        field: (&str, &str),
        files: &Attachments,
        errors: &mut Vec<ManifestError>,
    ) {
        let Some(written) = file else { return };
        let (inline_name, file_name) = field;
        let error = |message: String| ManifestError {
            file: doc.file.clone(),
            line: Some(doc.line_of(file_name)),
            path: file_name.to_string(),
            message,
        };
        if inline.is_some() {
            errors.push(error(format!("give either {inline_name} or {file_name}, not both")));
            return;
        }
        match files.get(&resolve(&doc.file, written)) {
            Some(text) => *inline = Some(text.clone()),
            None => errors.push(error(format!("the file '{written}' was not sent with the manifest"))),
        }
    }
    for c in &mut manifest.certificates {
        let (mut cert, mut key) = (c.value.certificate.take(), c.value.private_key.take());
        fill(c, &mut cert, &c.value.certificate_file, ("certificate", "certificateFile"), files, errors);
        fill(c, &mut key, &c.value.private_key_file, ("privateKey", "privateKeyFile"), files, errors);
        (c.value.certificate, c.value.private_key) = (cert, key);
    }
    for d in &mut manifest.domains {
        let Some(mut mtls) = d.value.mutual_tls.take() else { continue };
        let mut store = mtls.truststore.take();
        fill(
            d,
            &mut store,
            &mtls.truststore_file,
            ("mutualTls.truststore", "mutualTls.truststoreFile"),
            files,
            errors,
        );
        mtls.truststore = store;
        d.value.mutual_tls = Some(mtls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_beside_the_manifest() {
        assert_eq!(resolve("deploy/gateway.yaml", "tls/cert.pem"), "deploy/tls/cert.pem");
        assert_eq!(resolve("gateway.yaml", "cert.pem"), "cert.pem");
        assert_eq!(resolve("deploy/gateway.yaml", "/etc/tls/cert.pem"), "/etc/tls/cert.pem");
    }

    #[test]
    fn a_file_fills_its_field_and_a_missing_one_is_an_error() {
        let text = "kind: Certificate\nname: c\ncertificateFile: c.pem\nprivateKeyFile: k.pem\n";
        let mut m = Manifest::default();
        let mut errors = Vec::new();
        assert!(crate::manifest::parse_into("m/g.yaml", text, &mut m, &mut errors));
        assert_eq!(referenced(&m), vec!["m/c.pem".to_string(), "m/k.pem".to_string()]);
        let files = Attachments::from([("m/c.pem".to_string(), "CERT".to_string())]);
        inline(&mut m, &files, &mut errors);
        assert_eq!(m.certificates[0].value.certificate.as_deref(), Some("CERT"));
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].path.as_str(), errors[0].line), ("privateKeyFile", Some(4)));
    }
}
