//! `kind: UsagePlan` and `kind: ApiKey`: plans with their throttles and quotas, and the keys
//! that belong to them.

use super::Throttle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// AWS usage plan: API keys of the plan open its stages, each key with the plan's throttle
/// and quota of its own.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsagePlan {
    pub kind: String,
    pub name: String,
    /// `api/stage` names.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Per key: `rate` requests per second with `burst` at once.
    #[serde(default)]
    pub throttle: Option<Throttle>,
    /// Per key and method: `{"api/stage": {"GET /pets": {rate, burst}}}` (AWS apiStages
    /// throttle), checked before the plan's throttle.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_throttle: BTreeMap<String, BTreeMap<String, Throttle>>,
    #[serde(default)]
    pub quota: Option<Quota>,
}

/// Requests per key per period. Periods start at `start` (UTC) and repeat; without it at
/// midnight UTC, Monday or the 1st. `offset` requests are subtracted in the first period.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
    #[serde(default)]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKey {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default = "super::default_true")]
    pub enabled: bool,
    /// May refresh cache entries with `Cache-Control: max-age=0` on its plan's stages.
    #[serde(default)]
    pub invalidate_cache: bool,
}
