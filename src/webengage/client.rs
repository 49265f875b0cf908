//! The WebEngage REST client: performs one call and reports what happened (the HTTP
//! status, the rate-limit headers, the start of the body, the latency, or why no answer
//! came). What that means for the rows is decided elsewhere (`delivery::policy`).
//!
//! The API key lives in a `SecretString` and is exposed only to build the
//! `Authorization` header (which reqwest marks sensitive); it never reaches a log line
//! or an error message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use uuid::Uuid;

/// Longer than any sane WebEngage answer; shorter than the claim lease.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest body excerpt a report keeps: enough for WebEngage's error message.
pub const EXCERPT_LIMIT: usize = 1024;
/// Most of an answer's body read at all; the rest is not waited for.
const BODY_LIMIT: usize = 64 * 1024;

/// The WebEngage endpoints the bridge calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Users,
    Events,
    BulkUsers,
    BulkEvents,
    Transaction { campaign_id: String },
}

impl Endpoint {
    /// The name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Users => "users",
            Endpoint::Events => "events",
            Endpoint::BulkUsers => "bulk-users",
            Endpoint::BulkEvents => "bulk-events",
            Endpoint::Transaction { .. } => "transaction",
        }
    }

    pub fn is_transaction(&self) -> bool {
        matches!(self, Endpoint::Transaction { .. })
    }
}

/// What WebEngage's rate-limit headers said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: the account's per-minute quota for the endpoint.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`: other systems spend the same account quota.
    pub remaining: Option<u32>,
    /// `Retry-After` (seconds or an HTTP date), as a wait from the answer.
    pub retry_after: Option<Duration>,
}

/// Why a call got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Connect,
    /// The connection broke mid-answer, TLS failed, …
    Other,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connection failed",
            FailureKind::Other => "transport error",
        }
    }
}

/// What happened on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    /// None when no answer came (`failure` says why).
    pub http_status: Option<u16>,
    pub rate_limit: RateLimit,
    /// The start of the body, or the transport error, at most `EXCERPT_LIMIT` bytes.
    pub excerpt: Option<String>,
    pub latency: Duration,
    pub failure: Option<FailureKind>,
}

impl CallReport {
    pub fn latency_ms(&self) -> i32 {
        i32::try_from(self.latency.as_millis()).unwrap_or(i32::MAX)
    }

    /// One line for people: `HTTP 400: <WebEngage's message>` or `timeout: <error>`.
    pub fn describe(&self) -> String {
        let excerpt = self.excerpt.as_deref().unwrap_or("");
        match self.http_status {
            Some(code) => format!("HTTP {code}: {}", error_message(excerpt)),
            None => excerpt.to_owned(),
        }
    }
}

pub struct WebEngageClient {
    http: reqwest::Client,
    base_url: String,
    license_code: String,
    /// Swapped on SIGHUP when the key is read from `WEBENGAGE_API_KEY_FILE`.
    api_key: ArcSwap<SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Names exactly the variables that are not set.
    #[error("delivery paused: {0} not set")]
    MissingCredentials(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Where and as whom the client calls: the API host (`WEBENGAGE_BASE_URL`, else the
/// data center's), `WEBENGAGE_LICENSE_CODE`, `WEBENGAGE_API_KEY`.
#[derive(Debug, Clone)]
pub struct Account {
    pub base_url: String,
    pub license_code: Option<String>,
    pub api_key: Option<SecretString>,
}

impl WebEngageClient {
    pub fn new(account: Account) -> Result<Self, ClientError> {
        Self::with_timeouts(account, REQUEST_TIMEOUT, CONNECT_TIMEOUT)
    }

    /// `new` with other timeouts (tests of the timeout path).
    pub fn with_timeouts(
        account: Account,
        request: Duration,
        connect: Duration,
    ) -> Result<Self, ClientError> {
        let license_code = account.license_code.filter(|l| !l.trim().is_empty());
        let (license_code, api_key) = match (license_code, account.api_key) {
            (Some(license_code), Some(api_key)) => (license_code, api_key),
            (None, Some(_)) => {
                return Err(ClientError::MissingCredentials("WEBENGAGE_LICENSE_CODE is"));
            }
            (Some(_), None) => return Err(ClientError::MissingCredentials("WEBENGAGE_API_KEY is")),
            (None, None) => {
                return Err(ClientError::MissingCredentials(
                    "WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are",
                ));
            }
        };
        // reqwest is built without a provider of its own: whoever builds a client first
        // (the worker, a probe, a test) installs it.
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(request)
            .connect_timeout(connect)
            // A redirect means a wrong base URL; following it would turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webengage-bridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebEngageClient {
            http,
            base_url: account.base_url.trim_end_matches('/').to_owned(),
            license_code,
            api_key: ArcSwap::from_pointee(api_key),
        })
    }

    /// Uses `key` from the next call on (key rotation).
    pub fn set_api_key(&self, key: SecretString) {
        self.api_key.store(Arc::new(key));
    }

    /// The full URL of an endpoint.
    pub fn url(&self, endpoint: &Endpoint) -> String {
        let (base, license) = (&self.base_url, &self.license_code);
        match endpoint {
            Endpoint::Users => format!("{base}/v1/accounts/{license}/users"),
            Endpoint::Events => format!("{base}/v1/accounts/{license}/events"),
            Endpoint::BulkUsers => format!("{base}/v1/accounts/{license}/bulk-users"),
            Endpoint::BulkEvents => format!("{base}/v1/accounts/{license}/bulk-events"),
            Endpoint::Transaction { campaign_id } => {
                format!("{base}/v2/accounts/{license}/experiments/{campaign_id}/transaction")
            }
        }
    }

    /// POSTs `body` with `x-request-id: request_id` (as `request_id_header` writes it)
    /// and reports what happened.
    pub async fn send(&self, endpoint: &Endpoint, request_id: Uuid, body: &Value) -> CallReport {
        let started = Instant::now();
        let sent = self
            .http
            .post(self.url(endpoint))
            .bearer_auth(self.api_key.load().expose_secret())
            .header("x-request-id", request_id_header(request_id))
            .json(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return no_answer(&e, started.elapsed()),
        };
        let status = response.status().as_u16();
        let rate_limit = RateLimit {
            limit: header_number(&response, "x-ratelimit-limit"),
            remaining: header_number(&response, "x-ratelimit-remaining"),
            retry_after: retry_after(&response, OffsetDateTime::now_utc()),
        };
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= BODY_LIMIT {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return no_answer(&e, started.elapsed()),
            }
        }
        let text = String::from_utf8_lossy(&body);
        CallReport {
            http_status: Some(status),
            rate_limit,
            excerpt: (!text.is_empty()).then(|| truncate(&text, EXCERPT_LIMIT).to_owned()),
            latency: started.elapsed(),
            failure: None,
        }
    }
}

/// The `x-request-id` value: 32 lowercase hex characters, the form WebEngage's own
/// client sends (`uuid4().hex`); the same id gives the same value on every retry.
pub fn request_id_header(request_id: Uuid) -> String {
    request_id.simple().to_string()
}

fn header_number(response: &reqwest::Response, name: &str) -> Option<u32> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn retry_after(response: &reqwest::Response, now: OffsetDateTime) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// `Retry-After`: delay-seconds, or an HTTP date (a wait from `now`, zero when past).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// A call that got no HTTP answer. The URL is stripped: the text ends up in `last_error`.
fn no_answer(error: &reqwest::Error, latency: Duration) -> CallReport {
    let kind = if error.is_timeout() {
        FailureKind::Timeout
    } else if error.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Other
    };
    let message = format!("{}: {}", kind.label(), describe(error));
    CallReport {
        http_status: None,
        rate_limit: RateLimit::default(),
        excerpt: Some(truncate(&message, EXCERPT_LIMIT).to_owned()),
        latency,
        failure: Some(kind),
    }
}

/// The error and its causes on one line, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        current = e.source();
    }
    match error.url() {
        Some(url) => text.replace(url.as_str(), "WebEngage"),
        None => text,
    }
}

/// WebEngage's `{"response": {"message": ...}}`, else the start of the body.
pub fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/response/message"))
        .and_then(Value::as_str);
    match message {
        Some(m) => m.to_owned(),
        None if body.trim().is_empty() => "(empty response)".to_owned(),
        None => truncate(body.trim(), 300).to_owned(),
    }
}

/// `s` cut to at most `limit` bytes, on a character boundary.
pub fn truncate(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_credential_is_named_alone() {
        let account = |license: Option<&str>, key: Option<&str>| Account {
            base_url: "http://127.0.0.1:9".to_owned(),
            license_code: license.map(str::to_owned),
            api_key: key.map(|k| k.to_owned().into()),
        };
        let message = |a| WebEngageClient::new(a).err().map(|e| e.to_string());
        assert_eq!(
            message(account(Some("lic"), None)).as_deref(),
            Some("delivery paused: WEBENGAGE_API_KEY is not set")
        );
        assert_eq!(
            message(account(Some(" "), Some("k"))).as_deref(),
            Some("delivery paused: WEBENGAGE_LICENSE_CODE is not set")
        );
        assert_eq!(
            message(account(None, None)).as_deref(),
            Some("delivery paused: WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set")
        );
        assert!(WebEngageClient::new(account(Some("lic"), Some("k"))).is_ok());
    }

    #[test]
    fn error_message_falls_back_to_the_body() {
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(""), "(empty response)");
        assert_eq!(error_message(r#"{"response":{"message":"nope"}}"#), "nope");
    }

    #[test]
    fn the_request_id_is_32_lowercase_hex() {
        let id = Uuid::parse_str("0190A3C4-5B6D-7E8F-9A0B-1C2D3E4F5A6B").unwrap();
        assert_eq!(request_id_header(id), "0190a3c45b6d7e8f9a0b1c2d3e4f5a6b");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = OffsetDateTime::parse("Wed, 21 Oct 2026 07:28:00 GMT", &Rfc2822).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it backs off to the boundary before.
        assert_eq!(truncate("aé", 2), "a");
    }
}
