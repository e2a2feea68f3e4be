//! The compiled routing table: the one format both planes agree on.
//!
//! The control plane builds a [`Table`], serializes it with rkyv and ships the bytes; the data
//! plane validates them once ([`decode`]) and then reads the archived form in place, without
//! deserializing, for every request. The table is immutable: a change is a new table with a new
//! `version`.
//!
//! Everything the hot path needs is resolved at compile time: stage variables are substituted,
//! URI templates are pre-split into literal and parameter parts, upstream addresses are listed
//! once and referred to by index, and every lookup structure is sorted for binary search.

use rkyv::{Archive, Deserialize, Serialize};

/// Magic prefix of a table file, so a wrong file is rejected with a clear message rather than
/// a validation error deep inside rkyv.
/// Version 2 added the digest: a table is `MAGIC ‖ SHA-256(archive) ‖ archive`. Version 3
/// added certificates and the TLS settings of domains.
pub const MAGIC: &[u8; 8] = b"GWTABLE3";
/// Bytes of the digest after [`MAGIC`].
pub const DIGEST_LEN: usize = 32;

/// Most path parameters one route may declare; the lookup captures into a fixed array of
/// this size, so it never allocates.
pub const MAX_PARAMS: usize = 16;

/// A whole compiled configuration.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Monotonic version, assigned by the control plane.
    pub version: u64,
    /// Custom domains, sorted by `host` (lowercase, no port).
    pub domains: Vec<Domain>,
    /// `(api name, stage name)` pairs for execute-api style addressing
    /// (`{api}.anything/{stage}/path`), sorted by `(api, stage)`.
    pub stage_names: Vec<StageName>,
    /// Every deployed stage.
    pub stages: Vec<Stage>,
    /// Every upstream host the integrations call, referred to by index.
    pub upstreams: Vec<Upstream>,
    /// Every throttle (token bucket) of the table, referred to by index.
    pub limits: Vec<Limit>,
    /// The account-wide throttle (AWS: per account and region), index into `limits`.
    pub account_limit: Option<u32>,
    /// Every usage plan, referred to by index.
    pub plans: Vec<UsagePlan>,
    /// Every API key, sorted by `hash` for binary search.
    pub api_keys: Vec<ApiKey>,
    /// The server certificates of the HTTPS listener, referred to by index. They carry private
    /// keys: a table goes only to data planes, and is stored readable by its owner only.
    pub certificates: Vec<Certificate>,
    /// The certificate for a handshake whose server name no domain with a certificate has
    /// (none: such a handshake is refused with an alert).
    pub default_certificate: Option<u32>,
}

/// A certificate chain and its private key, as DER.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Certificate {
    pub name: String,
    /// Leaf first, then the intermediates.
    pub chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
    pub key_format: KeyFormat,
    /// Unix seconds after which the leaf is expired, for the expiry metric.
    pub not_after: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum KeyFormat {
    Pkcs8,
    Sec1,
    Pkcs1,
}

/// A domain's HTTPS settings.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DomainTls {
    /// Index into [`Table::certificates`].
    pub certificate: u32,
    pub policy: TlsPolicy,
    /// The CA certificates (DER) a client certificate must chain to; empty: no mutual TLS.
    pub truststore: Vec<Vec<u8>>,
}

/// AWS's security policies, as far as TLS 1.2 and 1.3 go.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum TlsPolicy {
    /// `TLS_1_2`: TLS 1.2 (ECDHE with AES-GCM) and TLS 1.3.
    Tls12,
    /// `TLS_1_3`: TLS 1.3 only.
    Tls13,
}

/// An AWS usage plan: the stages it covers and its quota. Its throttles are per key, so they
/// live on each [`ApiKey`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UsagePlan {
    pub id: u64,
    pub name: String,
    /// Indexes into [`Table::stages`], sorted.
    pub stages: Vec<u32>,
    pub quota: Option<Quota>,
}

/// A usage plan's quota, counted per API key (see [`crate::quota`]).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
    pub offset: u64,
    pub anchor_s: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

impl ArchivedQuota {
    pub fn rule(&self) -> crate::quota::Rule {
        crate::quota::Rule {
            limit: self.limit.to_native(),
            period: match self.period {
                ArchivedQuotaPeriod::Day => crate::quota::Period::Day,
                ArchivedQuotaPeriod::Week => crate::quota::Period::Week,
                ArchivedQuotaPeriod::Month => crate::quota::Period::Month,
            },
            offset: self.offset.to_native(),
            anchor_s: self.anchor_s.to_native(),
        }
    }
}

/// Largest quota limit: a data plane packs a period's count into 40 bits.
pub const MAX_QUOTA: u64 = 1_000_000_000_000;

/// An API key: only the SHA-256 of its value is in the table.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Stable id (from the key's name): its quota count survives table swaps by it.
    pub id: u64,
    pub name: String,
    pub hash: [u8; 32],
    /// A disabled key is refused like an unknown one.
    pub enabled: bool,
    /// Index into [`Table::plans`]; a key without a plan opens no API.
    pub plan: Option<u32>,
    /// The plan's throttle for this key, index into [`Table::limits`].
    pub limit: Option<u32>,
    /// The plan's per-method throttles for this key, sorted by route id.
    pub method_limits: Vec<KeyMethodLimit>,
    /// May refresh cache entries with `Cache-Control: max-age=0` on the stages its plan covers
    /// (the gateway's stand-in for AWS's `execute-api:InvalidateCache` permission).
    pub invalidate_cache: bool,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct KeyMethodLimit {
    /// [`Route::id`] (unique per API, stage and route key).
    pub route: u64,
    /// Index into [`Table::limits`].
    pub limit: u32,
}

/// A token bucket: `burst` requests at once, refilled at one per `interval_ns`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Limit {
    /// Stable id: the same throttle keeps its state across table versions, even when its
    /// rate or burst changes.
    pub id: u64,
    /// Nanoseconds per token (1e9 / rate).
    pub interval_ns: u64,
    pub burst: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Domain {
    /// Lowercase host name without port; `*.example.com` covers one label more.
    pub host: String,
    /// Certificate, policy and mutual TLS for HTTPS; none: the domain has no certificate.
    pub tls: Option<DomainTls>,
    /// Sorted longest base path first, so the first prefix that matches is the most specific.
    /// The empty base path, if present, is last and matches everything.
    pub mappings: Vec<BasePathMapping>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BasePathMapping {
    /// Path segments without leading or trailing slash (`""`, `"v1"`, `"v1/admin"`).
    pub base_path: String,
    /// Index into [`Table::stages`].
    pub stage: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StageName {
    pub api: String,
    pub stage: String,
    /// Index into [`Table::stages`].
    pub index: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum Protocol {
    Rest,
    Http,
    WebSocket,
}

/// One stage of one API, with its routes already resolved for this stage's variables.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Stage {
    /// Stable id: the same API and stage get the same id in every version, so per-shard state
    /// keyed by it survives a table swap.
    pub id: u64,
    pub api: String,
    pub name: String,
    pub protocol: Protocol,
    /// Sorted by name.
    pub variables: Vec<Variable>,
    /// The routes of the stage's deployment.
    pub routes: RouteSet,
    /// A canary: a share of requests served by another deployment, with its own variables.
    pub canary: Option<Canary>,
    /// The stage throttle, index into [`Table::limits`].
    pub limit: Option<u32>,
    /// The stage cache (AWS: the stage's cache cluster), when enabled.
    pub cache: Option<StageCache>,
    /// Where and how the stage's requests are logged.
    pub access_log: Option<AccessLog>,
}

/// A stage's access log (AWS accessLogSettings): a file and a line template.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// An absolute file path; lines are appended, and the file is reopened on SIGHUP.
    pub destination: String,
    pub format: Vec<LogPart>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum LogPart {
    Literal(String),
    Var(LogVar),
}

/// The `$context` variables an access log line can use.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum LogVar {
    RequestId,
    ExtendedRequestId,
    SourceIp,
    UserAgent,
    ApiKeyId,
    HttpMethod,
    Path,
    ResourcePath,
    RouteKey,
    Stage,
    ApiId,
    DomainName,
    Protocol,
    Status,
    ResponseLength,
    ResponseLatency,
    IntegrationLatency,
    IntegrationStatus,
    RequestTime,
    RequestTimeEpoch,
    XrayTraceId,
    ErrorMessage,
    ErrorResponseType,
    ClientCertPem,
    ClientCertSubjectDn,
    ClientCertIssuerDn,
    ClientCertSerialNumber,
    ClientCertNotBefore,
    ClientCertNotAfter,
}

impl LogVar {
    /// Every variable by its name after `$context.`.
    pub const NAMES: [(&'static str, LogVar); 29] = [
        ("requestId", LogVar::RequestId),
        ("extendedRequestId", LogVar::ExtendedRequestId),
        ("identity.sourceIp", LogVar::SourceIp),
        ("identity.userAgent", LogVar::UserAgent),
        ("identity.apiKeyId", LogVar::ApiKeyId),
        ("httpMethod", LogVar::HttpMethod),
        ("path", LogVar::Path),
        ("resourcePath", LogVar::ResourcePath),
        ("routeKey", LogVar::RouteKey),
        ("stage", LogVar::Stage),
        ("apiId", LogVar::ApiId),
        ("domainName", LogVar::DomainName),
        ("protocol", LogVar::Protocol),
        ("status", LogVar::Status),
        ("responseLength", LogVar::ResponseLength),
        ("responseLatency", LogVar::ResponseLatency),
        ("integrationLatency", LogVar::IntegrationLatency),
        ("integrationStatus", LogVar::IntegrationStatus),
        ("requestTime", LogVar::RequestTime),
        ("requestTimeEpoch", LogVar::RequestTimeEpoch),
        ("xrayTraceId", LogVar::XrayTraceId),
        ("error.message", LogVar::ErrorMessage),
        ("error.responseType", LogVar::ErrorResponseType),
        ("identity.clientCert.clientCertPem", LogVar::ClientCertPem),
        ("identity.clientCert.subjectDN", LogVar::ClientCertSubjectDn),
        ("identity.clientCert.issuerDN", LogVar::ClientCertIssuerDn),
        ("identity.clientCert.serialNumber", LogVar::ClientCertSerialNumber),
        ("identity.clientCert.validity.notBefore", LogVar::ClientCertNotBefore),
        ("identity.clientCert.validity.notAfter", LogVar::ClientCertNotAfter),
    ];
}

/// A stage's response cache: one store per data plane, shared by its shards.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct StageCache {
    /// Identity of the cache's contents: stage id, capacity and flush count. A data plane keeps
    /// the store (and its entries) across tables while this stays the same; a resize or a
    /// `controlctl cache flush` changes it and so starts an empty store, as AWS does.
    pub id: u64,
    /// Most bytes all entries may hold together, on each data plane.
    pub capacity_bytes: u64,
}

/// Largest response the cache stores (AWS: 1 MiB); larger ones are served, not stored.
pub const MAX_CACHED_RESPONSE: usize = 1 << 20;
/// Longest cache TTL AWS allows.
pub const MAX_CACHE_TTL_MS: u32 = 3_600_000;
/// Smallest stage cache capacity: the largest entry must fit.
pub const MIN_CACHE_CAPACITY: u64 = 1 << 20;

/// The routes of one deployment as a stage serves them.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RouteSet {
    /// The route tree; node 0 is the root (`/`).
    pub nodes: Vec<Node>,
    /// Literal edges of the tree, hashed (length 0 or a power of two, at most half full).
    pub edges: Vec<Edge>,
    pub routes: Vec<Route>,
}

/// A stage's canary (AWS canarySettings): `percent_per_million` of requests, chosen at random
/// per request, use `routes` (the canary deployment resolved with the stage's variables plus
/// the canary's overrides) instead of the stage's.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Canary {
    /// 0 to 1,000,000 (100%).
    pub percent_per_million: u32,
    pub deployment: String,
    pub variables: Vec<Variable>,
    pub routes: RouteSet,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: String,
}

/// A node of the path-segment tree. A request path walks it one segment at a time: literal
/// children first (found through [`RouteSet::edges`]), then the `{param}` child, then the greedy
/// `{proxy+}` routes, which is AWS's precedence (most specific wins).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Node {
    /// Whether any literal child exists, so a lookup skips hashing when none can match.
    pub has_literals: bool,
    /// The `{name}` child, if any (one per position: two routes that differ only in the
    /// parameter's name are the same resource, and the compiler rejects them).
    pub param: Option<u32>,
    /// Routes whose path ends at this node.
    pub methods: Vec<MethodRoute>,
    /// Routes whose path is this node followed by a greedy `{name+}` segment.
    pub greedy: Vec<MethodRoute>,
}

/// One literal edge `parent --segment--> node`, in a stage-wide open-addressing hash table
/// (see [`edge_slot`]), so finding a child costs the same for 3 siblings or 30,000.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Edge {
    /// [`EMPTY_EDGE`] marks a free slot.
    pub parent: u32,
    pub segment: String,
    pub node: u32,
}

/// `parent` of a free slot in [`RouteSet::edges`].
pub const EMPTY_EDGE: u32 = u32::MAX;

/// The home slot of an edge in a table of `len` slots (a power of two): FNV-1a over the parent
/// id and the segment bytes. Shared by the compiler and the lookup, so both agree.
pub fn edge_slot(parent: u32, segment: &str, len: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parent.to_le_bytes().iter().chain(segment.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Fold the high bits in: FNV's low bits alone are weak for short keys.
    ((hash ^ (hash >> 29)) as usize) & (len - 1)
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct MethodRoute {
    pub method: Method,
    /// Index into [`RouteSet::routes`].
    pub route: u32,
}

/// HTTP methods a route key may name. `Any` matches every method that has no route of its own.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Any,
}

impl Method {
    /// The method a request line names; `None` for methods no route can name (TRACE, CONNECT,
    /// extension methods), which then never match a route.
    pub fn from_bytes(name: &[u8]) -> Option<Method> {
        Some(match name {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"PATCH" => Method::Patch,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// The method a manifest route key names (`ANY` included).
    pub fn from_route_key(name: &str) -> Option<Method> {
        if name == "ANY" {
            return Some(Method::Any);
        }
        Method::from_bytes(name.as_bytes())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Any => "ANY",
        }
    }
}

impl ArchivedMethod {
    pub fn to_native(self) -> Method {
        match self {
            ArchivedMethod::Get => Method::Get,
            ArchivedMethod::Head => Method::Head,
            ArchivedMethod::Post => Method::Post,
            ArchivedMethod::Put => Method::Put,
            ArchivedMethod::Patch => Method::Patch,
            ArchivedMethod::Delete => Method::Delete,
            ArchivedMethod::Options => Method::Options,
            ArchivedMethod::Any => Method::Any,
        }
    }
}

impl ArchivedProtocol {
    pub fn to_native(self) -> Protocol {
        match self {
            ArchivedProtocol::Rest => Protocol::Rest,
            ArchivedProtocol::Http => Protocol::Http,
            ArchivedProtocol::WebSocket => Protocol::WebSocket,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Route {
    /// Stable id (from api, stage and route key).
    pub id: u64,
    /// The route key as written: `GET /pets/{petId}`.
    pub key: String,
    /// The resource path: `/pets/{petId}`.
    pub resource: String,
    /// Names of the path parameters in the order they appear in the path.
    pub params: Vec<String>,
    pub integration: Integration,
    /// The method throttle on this stage, index into [`Table::limits`].
    pub limit: Option<u32>,
    /// Requests need an `x-api-key` of a usage plan covering the stage (else 403).
    pub api_key_required: bool,
    /// How this method uses the stage cache; `None` when it does not.
    pub cache: Option<RouteCache>,
}

/// A method's cache settings (AWS method settings plus the method's `cacheKeyParameters`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteCache {
    /// Identity of this method's entries: the route id and every setting below. Entries
    /// stored under another identity are dropped when a table without it loads.
    pub id: u64,
    /// 1 ms to [`MAX_CACHE_TTL_MS`] (a TTL of 0 compiles to no cache at all).
    pub ttl_ms: u32,
    /// Only GET requests use the cache (AWS's default); false when the method enabled caching
    /// explicitly, so an ANY or POST route caches every method it serves.
    pub get_only: bool,
    /// The request values besides method and resource that tell entries apart, in order.
    pub key: Vec<CacheKeyPart>,
    /// `Cache-Control: max-age=0` refreshes the entry only for an API key allowed to
    /// invalidate (AWS: `requireAuthorizationForCacheControl`).
    pub require_authorization: bool,
    pub unauthorized: UnauthorizedInvalidation,
}

/// A `cacheKeyParameters` entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum CacheKeyPart {
    /// `method.request.path.NAME`: index into [`Route::params`].
    Path(u32),
    /// `method.request.querystring.NAME`: every value of the query parameter, in order.
    Query(String),
    /// `method.request.header.NAME`, lowercase (header names are case-insensitive).
    Header(String),
}

/// AWS `unauthorizedCacheControlHeaderStrategy`: what a refresh request from a client not
/// allowed to invalidate gets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
pub enum UnauthorizedInvalidation {
    /// 403, and nothing is served.
    FailWith403,
    /// Served as if the header were absent, with a `Warning` header saying so.
    SucceedWithResponseHeader,
    /// Served as if the header were absent.
    SucceedWithoutResponseHeader,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Integration {
    Mock(MockIntegration),
    Http(HttpIntegration),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MockIntegration {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HttpIntegration {
    /// HTTP_PROXY (true) passes the request through; HTTP (false) is the same for now and is
    /// where request and response mapping will plug in.
    pub proxy: bool,
    /// The method to call the upstream with; `None` means the client's method.
    pub method: Option<Method>,
    /// Index into [`Table::upstreams`].
    pub upstream: u32,
    /// The upstream request path (with any query string written in the URI), pre-split.
    pub path: Vec<UriPart>,
    pub timeout_ms: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum UriPart {
    Literal(String),
    /// The value of the route's path parameter with this index (see [`Route::params`]).
    Param(u32),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Host name or IP literal, as written in the URI.
    pub host: String,
    pub port: u16,
    /// For an `https://` URI: how the upstream's certificate is verified.
    pub tls: Option<UpstreamTls>,
}

/// AWS's `tlsConfig` for an HTTPS integration.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent as SNI and checked against the certificate (the URI's host by default).
    pub server_name: String,
    /// CA certificates (DER) the upstream's chain must reach; empty: the system's roots.
    pub ca_bundle: Vec<Vec<u8>>,
    /// AWS's `insecureSkipVerification`: any certificate is taken (the handshake still is TLS).
    pub insecure_skip_verification: bool,
}

/// Why table bytes could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotATable,
    Corrupt(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotATable => write!(f, "not a routing table (bad magic)"),
            DecodeError::Corrupt(why) => write!(f, "corrupt routing table: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Serializes a table to its wire and file form: [`MAGIC`], the SHA-256 of the rkyv archive,
/// then the archive.
pub fn encode(table: &Table) -> Vec<u8> {
    let archive =
        rkyv::to_bytes::<rkyv::rancor::Error>(table).expect("serializing a table into memory cannot fail");
    seal(&archive)
}

/// The digest a table's bytes carry (see [`decode`], which checks it), if they are long
/// enough to carry one.
pub fn stated_digest(bytes: &[u8]) -> Option<&[u8]> {
    bytes.get(MAGIC.len()..MAGIC.len() + DIGEST_LEN)
}

/// `archive` framed with the magic and its digest.
pub(crate) fn seal(archive: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(MAGIC.len() + DIGEST_LEN + archive.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&sha2::Sha256::digest(archive));
    out.extend_from_slice(archive);
    out
}

/// Validated table bytes, aligned for rkyv, that hand out the archived view for free.
pub struct TableBytes {
    bytes: rkyv::util::AlignedVec,
    digest: [u8; DIGEST_LEN],
}

impl TableBytes {
    pub fn get(&self) -> &ArchivedTable {
        // The bytes were validated in `decode` and are immutable since, so the unchecked
        // access is sound; it is rkyv's safe API over a checked buffer.
        // SAFETY: `decode` ran `rkyv::access` (bytecheck validation) on exactly these bytes.
        unsafe { rkyv::access_unchecked::<ArchivedTable>(&self.bytes) }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The SHA-256 of the archive: what the table is, whatever its version number says.
    pub fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.digest
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// True for an HTTP token (RFC 9110 §5.6.2): a header name or a method. The one rule the
/// compiler and the decoder both apply to names written to the wire.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// True for a byte a token may hold (`tchar`).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// True for an upstream host as the table keeps it: a name or address of letters, digits,
/// `-`, `.` and `_`, or an `[IPv6]` literal. It is written into every upstream `Host` header.
pub fn is_upstream_host(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
}

/// True for a name an access log may have: a plain file name (letters, digits, `-`, `_`, `.`;
/// not starting with `.`; at most 255 bytes), so it can only name a file inside the data
/// plane's access-log directory.
pub fn is_log_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Checks table bytes once: magic, rkyv structure, and the cross references (every index in
/// range) that the lookup relies on. After this, the hot path can index without checks failing.
pub fn decode(bytes: &[u8]) -> Result<TableBytes, DecodeError> {
    use sha2::Digest;
    let sealed = bytes.strip_prefix(MAGIC.as_slice()).ok_or(DecodeError::NotATable)?;
    if sealed.len() < DIGEST_LEN {
        return Err(DecodeError::Corrupt("truncated before its digest".into()));
    }
    let (digest, body) = sealed.split_at(DIGEST_LEN);
    // The structural checks below catch what would crash the lookup, not a flipped flag (an
    // `apiKeyRequired` turned off is a valid table): the digest catches every change.
    if sha2::Sha256::digest(body).as_slice() != digest {
        return Err(DecodeError::Corrupt("the SHA-256 digest does not match its contents".into()));
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    let table = rkyv::access::<ArchivedTable, rkyv::rancor::Error>(&aligned)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    check_references(table).map_err(DecodeError::Corrupt)?;
    let mut stored = [0u8; DIGEST_LEN];
    stored.copy_from_slice(digest);
    Ok(TableBytes { bytes: aligned, digest: stored })
}

fn check_route_set(set: &ArchivedRouteSet, upstreams: usize, limits: usize) -> Result<(), String> {
    let nodes = set.nodes.len();
    let routes = set.routes.len();
    if nodes == 0 {
        return Err("no root node".into());
    }
    let edges = set.edges.len();
    let free = set.edges.iter().filter(|e| e.parent.to_native() == EMPTY_EDGE).count();
    if edges != 0 && (!edges.is_power_of_two() || free == 0) {
        return Err("a malformed edge table".into());
    }
    // The lookup probes the edge table of a node with literal children: it must exist.
    if edges == 0 && set.nodes.iter().any(|n| n.has_literals) {
        return Err("literal children without an edge table".into());
    }
    let edges_ok = set.edges.iter().all(|e| {
        e.parent.to_native() == EMPTY_EDGE
            || ((e.parent.to_native() as usize) < nodes && (e.node.to_native() as usize) < nodes)
    });
    if !edges_ok {
        return Err("a dangling edge".into());
    }
    for node in set.nodes.iter() {
        let child_ok = node.param.as_ref().is_none_or(|p| (p.to_native() as usize) < nodes);
        let routes_ok =
            node.methods.iter().chain(node.greedy.iter()).all(|m| (m.route.to_native() as usize) < routes);
        if !child_ok || !routes_ok {
            return Err("a dangling reference".into());
        }
    }
    for route in set.routes.iter() {
        if route.limit.as_ref().is_some_and(|l| l.to_native() as usize >= limits) {
            return Err(format!("route {} has a missing throttle", route.key));
        }
        if route.params.len() > MAX_PARAMS {
            return Err(format!("route {} has too many parameters", route.key));
        }
        if let Some(cache) = route.cache.as_ref() {
            let ttl = cache.ttl_ms.to_native();
            let params_ok = cache.key.iter().all(|part| match part {
                ArchivedCacheKeyPart::Path(i) => (i.to_native() as usize) < route.params.len(),
                ArchivedCacheKeyPart::Header(name) => !name.bytes().any(|b| b.is_ascii_uppercase()),
                ArchivedCacheKeyPart::Query(_) => true,
            });
            if ttl == 0 || ttl > MAX_CACHE_TTL_MS || !params_ok {
                return Err(format!("route {} has malformed cache settings", route.key));
            }
        }
        if let ArchivedIntegration::Mock(mock) = &route.integration {
            let header_ok = |h: &ArchivedHeader| {
                is_token(&h.name) && !h.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            };
            if !mock.headers.iter().all(header_ok) {
                return Err(format!("route {} has a malformed response header", route.key));
            }
        }
        if let ArchivedIntegration::Http(http) = &route.integration {
            if http.upstream.to_native() as usize >= upstreams {
                return Err(format!("route {} calls a missing upstream", route.key));
            }
            for part in http.path.iter() {
                match part {
                    ArchivedUriPart::Param(i) if i.to_native() as usize >= route.params.len() => {
                        return Err(format!("route {} uses a missing parameter", route.key));
                    }
                    // Written into the upstream request line as it is.
                    ArchivedUriPart::Literal(text) if !text.bytes().all(|b| b.is_ascii_graphic()) => {
                        return Err(format!(
                            "route {} has a request target that is not visible ASCII",
                            route.key
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn check_references(table: &ArchivedTable) -> Result<(), String> {
    let stages = table.stages.len();
    let upstreams = table.upstreams.len();
    // Written into every upstream request's Host header as it is.
    if let Some(bad) = table.upstreams.iter().find(|u| !is_upstream_host(&u.host)) {
        return Err(format!("upstream host {:?} is not a host name", bad.host.as_str()));
    }
    for domain in table.domains.iter() {
        for mapping in domain.mappings.iter() {
            if mapping.stage.to_native() as usize >= stages {
                return Err(format!("domain {} maps to a missing stage", domain.host));
            }
        }
    }
    for name in table.stage_names.iter() {
        if name.index.to_native() as usize >= stages {
            return Err(format!("stage name {}/{} points nowhere", name.api, name.stage));
        }
    }
    let limits = table.limits.len();
    if table.limits.iter().any(|l| l.interval_ns.to_native() == 0) {
        return Err("a throttle with no refill interval".into());
    }
    if table.account_limit.as_ref().is_some_and(|l| l.to_native() as usize >= limits) {
        return Err("the account throttle is missing".into());
    }
    check_keys(table)?;
    for stage in table.stages.iter() {
        let name = format!("{}/{}", stage.api, stage.name);
        if stage.limit.as_ref().is_some_and(|l| l.to_native() as usize >= limits) {
            return Err(format!("stage {name} has a missing throttle"));
        }
        check_route_set(&stage.routes, upstreams, limits).map_err(|e| format!("stage {name}: {e}"))?;
        if let Some(cache) = stage.cache.as_ref() {
            if cache.capacity_bytes.to_native() < MIN_CACHE_CAPACITY {
                return Err(format!("stage {name}: cache capacity below {MIN_CACHE_CAPACITY} bytes"));
            }
        }
        if stage.access_log.as_ref().is_some_and(|log| !is_log_file_name(&log.destination)) {
            return Err(format!("stage {name}: the access log is not a plain file name"));
        }
        if let Some(canary) = stage.canary.as_ref() {
            if canary.percent_per_million.to_native() > 1_000_000 {
                return Err(format!("stage {name}: canary share above 100%"));
            }
            check_route_set(&canary.routes, upstreams, limits)
                .map_err(|e| format!("stage {name} canary: {e}"))?;
        }
    }
    Ok(())
}

fn check_keys(table: &ArchivedTable) -> Result<(), String> {
    let (stages, limits, plans) = (table.stages.len(), table.limits.len(), table.plans.len());
    for plan in table.plans.iter() {
        if plan.stages.iter().any(|s| s.to_native() as usize >= stages) {
            return Err(format!("usage plan {} covers a missing stage", plan.name));
        }
        if !plan.stages.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("usage plan {}: stages not sorted", plan.name));
        }
        if plan.quota.as_ref().is_some_and(|q| q.limit.to_native() > MAX_QUOTA) {
            return Err(format!("usage plan {}: quota above {MAX_QUOTA}", plan.name));
        }
    }
    if !table.api_keys.windows(2).all(|w| w[0].hash < w[1].hash) {
        return Err("api keys not sorted by hash, or a hash twice".into());
    }
    for key in table.api_keys.iter() {
        let plan_ok = key.plan.as_ref().is_none_or(|p| (p.to_native() as usize) < plans);
        let limit_ok = key.limit.as_ref().is_none_or(|l| (l.to_native() as usize) < limits);
        let methods_ok = key.method_limits.iter().all(|m| (m.limit.to_native() as usize) < limits)
            && key.method_limits.windows(2).all(|w| w[0].route < w[1].route);
        if !(plan_ok && limit_ok && methods_ok) {
            return Err(format!("api key {} has a dangling reference", key.name));
        }
    }
    Ok(())
}
