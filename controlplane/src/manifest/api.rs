//! `kind: Api`: routes and their integrations, throttles and cache settings.

use super::{DurationText, Throttle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Rest,
    Http,
    Websocket,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub kind: String,
    pub name: String,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(default)]
    pub routes: BTreeMap<String, Route>,
}

pub(super) fn default_protocol() -> Protocol {
    Protocol::Rest
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    pub integration: Integration,
    #[serde(default)]
    pub throttle: Option<Throttle>,
    #[serde(default)]
    pub cache: Option<RouteCache>,
    #[serde(default)]
    pub api_key_required: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteCache {
    /// Overrides the stage's TTL; 0 turns caching off for this method.
    #[serde(default)]
    pub ttl: Option<DurationText>,
    /// AWS `cacheKeyParameters`: `method.request.{path,querystring,header}.NAME`.
    #[serde(default)]
    pub key_parameters: Vec<String>,
    /// Caches a method other than GET (true) or turns a GET's caching off (false).
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub require_authorization: Option<bool>,
    #[serde(default)]
    pub unauthorized_handling: Option<UnauthorizedHandling>,
}

/// AWS `unauthorizedCacheControlHeaderStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum UnauthorizedHandling {
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    #[serde(rename = "SUCCEED_WITH_RESPONSE_HEADER")]
    SucceedWithResponseHeader,
    #[serde(rename = "SUCCEED_WITHOUT_RESPONSE_HEADER")]
    SucceedWithoutResponseHeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum IntegrationType {
    #[serde(rename = "MOCK")]
    Mock,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTP_PROXY")]
    HttpProxy,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    #[serde(default)]
    pub uri: Option<String>,
    /// Method for the upstream call; the client's method when absent.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub timeout: Option<DurationText>,
    #[serde(default)]
    pub response: Option<MockResponse>,
    /// For `https://` URIs, as AWS's `tlsConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IntegrationTls>,
}

/// How an HTTPS upstream's certificate is verified.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntegrationTls {
    /// PEM CA certificates to verify against instead of the system's roots (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// The name to send as SNI and verify (AWS's `serverNameToVerify`); the URI's host
    /// by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Take any certificate (AWS's `insecureSkipVerification`).
    #[serde(default)]
    pub insecure_skip_verification: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MockResponse {
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

fn default_status() -> u16 {
    200
}
