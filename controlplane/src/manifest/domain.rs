//! `kind: Domain`: a host name and the base paths mapped to stages, and for HTTPS its
//! certificate, security policy and mutual TLS.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Domain {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// The `Certificate` served for this name; none: the domain is served over plain HTTP only
    /// (an HTTPS handshake for it gets the default certificate, if there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// `TLS_1_2` (the default) or `TLS_1_3`, as AWS names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_tls: Option<MutualTls>,
}

/// AWS's `mutualTlsAuthentication`: clients must present a certificate that chains to one of
/// the truststore's CAs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutualTls {
    /// PEM CA certificates, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore: Option<String>,
    /// ... or a PEM file the control plane reads at every apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mapping {
    #[serde(default)]
    pub base_path: String,
    pub api: String,
    pub stage: String,
}
