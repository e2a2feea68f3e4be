//! `kind: Stage`: an API deployed under a name, with variables, throttle, cache, canary and
//! access log.

use super::{DurationText, Throttle, UnauthorizedHandling};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stage {
    pub kind: String,
    pub api: String,
    pub name: String,
    #[serde(default = "super::default_true")]
    pub auto_deploy: bool,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub throttle: Option<Throttle>,
    #[serde(default)]
    pub cache: Option<StageCache>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<StageCanary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSettings>,
}

/// AWS accessLogSettings: a file and a format (`CLF`, `JSON` or a `$context` template).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    pub destination: String,
    #[serde(default)]
    pub format: Option<String>,
}

/// AWS canarySettings: a share of the stage's traffic goes to another deployment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageCanary {
    /// A deployment id of this stage's API (`controlctl deployments API --stage S`).
    pub deployment: String,
    /// Share of requests, 0 to 100 (fractions allowed, e.g. 0.5).
    pub percent: f64,
    /// Stage variables the canary overrides.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// The stage cache (AWS: cache cluster plus the stage-wide `*/*` method settings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageCache {
    #[serde(default)]
    pub enabled: bool,
    /// Bytes, with an optional unit: `256MiB`, `1GiB`, `500MB` (default 0.5 GiB, as AWS).
    #[serde(default)]
    pub capacity: Option<String>,
    /// Default TTL of every method (default 300s, at most 3600s, 0 caches nothing).
    #[serde(default)]
    pub ttl: Option<DurationText>,
    #[serde(default)]
    pub require_authorization: Option<bool>,
    #[serde(default)]
    pub unauthorized_handling: Option<UnauthorizedHandling>,
}
