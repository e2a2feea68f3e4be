//! Gateway errors: every failure the gateway itself answers has one [`Kind`], and
//! [`Kind::response`] is the one place a kind becomes AWS's status, `{"message": ...}` body and
//! `x-amzn-ErrorType` (written by [`crate::respond::error`]). Pure data, so every layer can
//! name an error.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// REST API: no route matched (AWS uses this for unknown resources too).
    MissingAuthenticationToken,
    /// HTTP API: no route matched.
    NotFound,
    /// No API is mapped for this host and path.
    UnknownDomain,
    /// Malformed request or ambiguous framing.
    BadRequest,
    RequestTooLarge,
    UriTooLong,
    HeadersTooLarge,
    ExpectationFailed,
    /// The integration did not answer in time.
    IntegrationTimeout,
    /// The integration could not be reached, or answered with something that is not HTTP.
    IntegrationFailure,
    /// No routing table is loaded yet.
    NotReady,
    /// The shard's budget for buffered bytes ([`crate::runtime::memory`]) has no room for the
    /// request's body or its integration's response.
    Overloaded,
    /// A throttle (usage plan, method, stage or account) has no token left.
    Throttled,
    /// The route requires an API key and the request has none that opens this stage.
    InvalidApiKey,
    /// The API key's usage plan quota for this period is used up.
    QuotaExceeded,
    /// `Cache-Control: max-age=0` from a client not allowed to invalidate, on a method whose
    /// unauthorized handling is FAIL_WITH_403.
    InvalidationForbidden,
}

impl Kind {
    /// `(status, body, x-amzn-ErrorType)` as AWS answers.
    pub fn response(self) -> (u16, &'static [u8], Option<&'static [u8]>) {
        match self {
            Kind::MissingAuthenticationToken => (
                403,
                br#"{"message":"Missing Authentication Token"}"#,
                Some(b"MissingAuthenticationTokenException"),
            ),
            Kind::NotFound => (404, br#"{"message":"Not Found"}"#, None),
            Kind::UnknownDomain => (403, br#"{"message":"Forbidden"}"#, Some(b"ForbiddenException")),
            Kind::BadRequest => (400, br#"{"message":"Bad Request"}"#, Some(b"BadRequestException")),
            Kind::RequestTooLarge => {
                (413, br#"{"message":"Request Too Long"}"#, Some(b"RequestTooLargeException"))
            }
            Kind::UriTooLong => (414, br#"{"message":"Request-URI Too Long"}"#, None),
            Kind::HeadersTooLarge => (431, br#"{"message":"Request Header Fields Too Large"}"#, None),
            Kind::ExpectationFailed => (417, br#"{"message":"Expectation Failed"}"#, None),
            Kind::IntegrationTimeout => (504, br#"{"message":"Endpoint request timed out"}"#, None),
            Kind::IntegrationFailure => {
                (502, br#"{"message":"Internal server error"}"#, Some(b"InternalServerErrorException"))
            }
            Kind::NotReady | Kind::Overloaded => (503, br#"{"message":"Service Unavailable"}"#, None),
            Kind::Throttled => (429, br#"{"message":"Too Many Requests"}"#, Some(b"ThrottlingException")),
            Kind::InvalidApiKey => (403, br#"{"message":"Forbidden"}"#, Some(b"ForbiddenException")),
            Kind::QuotaExceeded => (429, br#"{"message":"Limit Exceeded"}"#, Some(b"LimitExceededException")),
            Kind::InvalidationForbidden => (
                403,
                br#"{"message":"User is not authorized to perform: execute-api:InvalidateCache"}"#,
                Some(b"AccessDeniedException"),
            ),
        }
    }
}

impl Kind {
    /// The `message` of the response body (`$context.error.message`).
    pub fn message(self) -> &'static [u8] {
        let body = self.response().1;
        let message = body.strip_prefix(br#"{"message":""#).and_then(|m| m.strip_suffix(br#""}"#));
        message.unwrap_or(body)
    }

    /// AWS's gateway response type (`$context.error.responseType`).
    pub fn response_type(self) -> &'static str {
        match self {
            Kind::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            Kind::NotFound => "RESOURCE_NOT_FOUND",
            Kind::UnknownDomain | Kind::BadRequest | Kind::UriTooLong | Kind::HeadersTooLarge => {
                "DEFAULT_4XX"
            }
            Kind::ExpectationFailed => "DEFAULT_4XX",
            Kind::RequestTooLarge => "REQUEST_TOO_LARGE",
            Kind::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            Kind::IntegrationFailure => "INTEGRATION_FAILURE",
            Kind::NotReady | Kind::Overloaded => "DEFAULT_5XX",
            Kind::Throttled => "THROTTLED",
            Kind::InvalidApiKey => "INVALID_API_KEY",
            Kind::QuotaExceeded => "QUOTA_EXCEEDED",
            Kind::InvalidationForbidden => "ACCESS_DENIED",
        }
    }
}
