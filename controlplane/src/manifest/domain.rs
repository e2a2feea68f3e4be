//! `kind: Domain`: a host name and the base paths mapped to stages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mapping {
    #[serde(default)]
    pub base_path: String,
    pub api: String,
    pub stage: String,
}
