//! `controlctl`'s configuration file, in the manner of a kubeconfig: contexts, each a control
//! plane's URL, the CA its certificate chains to, and a token; one of them current. Read from
//! `$CONTROLCTL_CONFIG`, else `~/.config/controlctl/config`. The control plane writes one for
//! its admin on its first start (`DATA_DIR/admin.conf`).
//!
//! ```yaml
//! current-context: edge-1
//! contexts:
//!   - name: edge-1
//!     server: https://10.0.0.5:7000
//!     certificate-authority-data: |
//!       -----BEGIN CERTIFICATE-----
//!       ...
//!     token: gwt_...
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientConfig {
    #[serde(default)]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    pub name: String,
    pub server: String,
    /// PEM of the CA, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// ... or a PEM file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Where the configuration is read from.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CONTROLCTL_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".config/controlctl/config"))
}

impl ClientConfig {
    /// The file at `path`; an empty configuration if there is none.
    pub fn load(path: &Path) -> Result<ClientConfig, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes it readable by the owner only (it holds a token).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = yaml_serde::to_string(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        proto::durable_file::write(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The context named `name`, else the current one, else the only one.
    pub fn context(&self, name: Option<&str>) -> Result<Option<&Context>, String> {
        let wanted = name.map(str::to_string).or_else(|| self.current_context.clone());
        match wanted {
            Some(n) => match self.contexts.iter().find(|c| c.name == n) {
                Some(c) => Ok(Some(c)),
                None => Err(format!("no context named '{n}' in the controlctl configuration")),
            },
            None if self.contexts.len() == 1 => Ok(self.contexts.first()),
            None => Ok(None),
        }
    }

    /// Adds or replaces a context and makes it current.
    pub fn set(&mut self, context: Context) {
        self.current_context = Some(context.name.clone());
        self.contexts.retain(|c| c.name != context.name);
        self.contexts.push(context);
    }
}

impl Context {
    /// The CA's PEM, inline or from its file.
    pub fn ca_pem(&self) -> Result<Option<String>, String> {
        if let Some(pem) = &self.certificate_authority_data {
            return Ok(Some(pem.clone()));
        }
        match &self.certificate_authority {
            Some(path) => {
                std::fs::read_to_string(path).map(Some).map_err(|e| format!("{}: {e}", path.display()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_picked_by_name_then_current_then_alone() {
        let ctx = |n: &str| Context {
            name: n.into(),
            server: format!("https://{n}:7000"),
            certificate_authority_data: None,
            certificate_authority: None,
            token: None,
        };
        let mut config = ClientConfig::default();
        config.set(ctx("a"));
        assert_eq!(config.context(None).unwrap().unwrap().name, "a");
        config.set(ctx("b"));
        assert_eq!(config.context(None).unwrap().unwrap().name, "b");
        assert_eq!(config.context(Some("a")).unwrap().unwrap().name, "a");
        assert!(config.context(Some("c")).is_err());
        let text = yaml_serde::to_string(&config).unwrap();
        assert!(text.contains("current-context: b"), "{text}");
        assert_eq!(yaml_serde::from_str::<ClientConfig>(&text).unwrap(), config);
    }
}
