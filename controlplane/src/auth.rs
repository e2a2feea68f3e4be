//! Who may call the control plane: bearer tokens, each with a role, stored as SHA-256 hashes in
//! `tokens.json` beside the state (the token itself is shown once, when made). Every RPC names
//! the action it is; [`Tokens::authorize`] answers `UNAUTHENTICATED` without a known token
//! and `PERMISSION_DENIED` when the token's role may not take that action, before the call
//! reads or changes anything.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tonic::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads: get, diff, status, deployments, usage, metrics.
    Viewer,
    /// What a data plane does: watch tables, ack them, report usage and metrics.
    Dataplane,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Dataplane => "dataplane",
        }
    }
}

/// What a call does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads the desired state, the status, usage or metrics.
    Read,
    /// Changes the desired state or usage, or manages tokens.
    Write,
    /// The data plane's own calls.
    Dataplane,
}

impl Action {
    fn allowed(self, role: Role) -> bool {
        matches!(
            (role, self),
            (Role::Admin, Action::Read | Action::Write)
                | (Role::Viewer, Action::Read)
                | (Role::Dataplane, Action::Dataplane)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created_ms: u64,
}

/// The caller an accepted call came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

pub struct Tokens {
    path: PathBuf,
    records: Mutex<Vec<TokenRecord>>,
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token: `gwt_` and 40 random hex digits from the kernel.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("gwt_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

impl Tokens {
    /// The tokens stored in `dir` (none on a first start).
    pub fn open(dir: &Path) -> std::io::Result<Tokens> {
        let path = dir.join("tokens.json");
        let records = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Tokens { path, records: Mutex::new(records) })
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TokenRecord>> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a token for `name` (which must be new), stores its hash durably, and returns it.
    pub fn create(&self, name: &str, role: Role, now_ms: u64) -> Result<String, Status> {
        if name.is_empty()
            || name.len() > 128
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Status::invalid_argument(
                "a token name is letters, digits, '-', '_' and '.' (at most 128)",
            ));
        }
        let mut records = self.lock();
        if records.iter().any(|r| r.name == name) {
            return Err(Status::already_exists(format!("a token named '{name}' exists; revoke it first")));
        }
        let token = generate().map_err(|e| Status::internal(format!("no random bytes: {e}")))?;
        let mut next = records.clone();
        next.push(TokenRecord { name: name.to_string(), role, sha256: hash(&token), created_ms: now_ms });
        self.save(&next)?;
        *records = next;
        Ok(token)
    }

    /// Removes the token named `name`; false if there is none. The last admin token stays:
    /// without it nobody could manage the gateway.
    pub fn revoke(&self, name: &str) -> Result<bool, Status> {
        let mut records = self.lock();
        let admins = records.iter().filter(|r| r.role == Role::Admin).count();
        if admins == 1 && records.iter().any(|r| r.name == name && r.role == Role::Admin) {
            return Err(Status::failed_precondition(format!(
                "'{name}' is the last admin token; create another admin token first"
            )));
        }
        let next: Vec<TokenRecord> = records.iter().filter(|r| r.name != name).cloned().collect();
        if next.len() == records.len() {
            return Ok(false);
        }
        self.save(&next)?;
        *records = next;
        Ok(true)
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        self.lock().clone()
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), Status> {
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| Status::internal(e.to_string()))?;
        proto::durable_file::write(&self.path, &bytes)
            .map_err(|e| Status::internal(format!("storing tokens: {e}")))
    }

    /// The caller of a request that takes `action`, or the refusal: by its bearer token, else
    /// by a client certificate the control plane's CA issued to a data plane
    /// (`controlplane issue-dataplane-cert`; the TLS layer has verified its chain).
    pub fn authorize<T>(&self, request: &tonic::Request<T>, action: Action) -> Result<Caller, Status> {
        if request.metadata().get("authorization").is_none() {
            if let Some(name) = request.peer_certs().and_then(|chain| dataplane_certificate(chain.first()?)) {
                let caller = Caller { name, role: Role::Dataplane };
                if !action.allowed(caller.role) {
                    return Err(Status::permission_denied(format!(
                        "data-plane certificate '{}' may only act as a data plane",
                        caller.name
                    )));
                }
                return Ok(caller);
            }
        }
        self.authorize_token(request.metadata(), action)
    }

    /// [`Tokens::authorize`] again for a call still going on (a watch stream): a revoked token
    /// is refused now; a caller that came with a certificate has no token to revoke.
    pub fn authorize_again(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        action: Action,
    ) -> Result<(), Status> {
        match metadata.get("authorization") {
            Some(_) => self.authorize_token(metadata, action).map(|_| ()),
            None => Ok(()),
        }
    }

    fn authorize_token(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        action: Action,
    ) -> Result<Caller, Status> {
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "no token: send `authorization: Bearer TOKEN` (or, for a data plane, its certificate)",
            ));
        };
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let Some(token) = token else {
            return Err(Status::unauthenticated("the authorization header is not `Bearer TOKEN`"));
        };
        let digest = hash(token);
        let records = self.lock();
        let Some(record) = records.iter().find(|r| r.sha256 == digest) else {
            return Err(Status::unauthenticated("unknown or revoked token"));
        };
        if !action.allowed(record.role) {
            let what = match action {
                Action::Read => "read the gateway's state",
                Action::Write => "change the gateway's state",
                Action::Dataplane => "act as a data plane",
            };
            return Err(Status::permission_denied(format!(
                "token '{}' has role {}, which may not {what}",
                record.name,
                record.role.name()
            )));
        }
        Ok(Caller { name: record.name.clone(), role: record.role })
    }
}

/// The organizational unit the control plane's CA puts in the certificates it issues to data
/// planes, and only in those.
pub const DATAPLANE_UNIT: &str = "gateway-dataplane";

/// The data plane's name (its CN) if `cert` is one the control plane issued to a data plane.
fn dataplane_certificate(cert: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    let facts = proto::certificate::facts(cert.as_ref()).ok()?;
    let unit = format!("OU={DATAPLANE_UNIT}");
    let parts: Vec<&str> = facts.subject.split(',').collect();
    if !parts.contains(&unit.as_str()) {
        return None;
    }
    parts.iter().find_map(|p| p.strip_prefix("CN=")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> tonic::metadata::MetadataMap {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("authorization", format!("Bearer {token}").parse().unwrap());
        m
    }

    #[test]
    fn roles_allow_their_actions_only_and_revoked_tokens_nothing() {
        let dir = std::env::temp_dir().join(format!("auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = Tokens::open(&dir).unwrap();
        let admin = tokens.create("root", Role::Admin, 1).unwrap();
        let viewer = tokens.create("eyes", Role::Viewer, 1).unwrap();
        let dp = tokens.create("edge-1", Role::Dataplane, 1).unwrap();
        assert!(tokens.create("eyes", Role::Admin, 1).is_err());
        let ok = |t: &str, a| tokens.authorize_token(&bearer(t), a).is_ok();
        assert!(ok(&admin, Action::Write) && ok(&admin, Action::Read) && !ok(&admin, Action::Dataplane));
        assert!(ok(&viewer, Action::Read) && !ok(&viewer, Action::Write));
        assert!(ok(&dp, Action::Dataplane) && !ok(&dp, Action::Read));
        let denied = tokens.authorize_token(&bearer(&viewer), Action::Write).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let unknown = tokens.authorize_token(&bearer("gwt_nope"), Action::Read).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            tokens.authorize_token(&Default::default(), Action::Read).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(tokens.revoke("eyes").unwrap());
        assert!(!ok(&viewer, Action::Read));
        // Stored hashed, and they survive a restart.
        let text = std::fs::read_to_string(dir.join("tokens.json")).unwrap();
        assert!(!text.contains(&admin) && text.contains(&hash(&admin)));
        let again = Tokens::open(&dir).unwrap();
        assert!(again.authorize_token(&bearer(&admin), Action::Write).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
