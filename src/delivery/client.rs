//! The WebEngage REST client: one call, classified into what the worker should do.
//!
//! The API key lives in a `SecretString` and is exposed only to build the
//! `Authorization` header (which reqwest marks sensitive); it never reaches a log line
//! or an error message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use crate::config::WebEngageSettings;
use crate::store::attempts::{EXCERPT_LIMIT, truncate};

/// Longer than any sane WebEngage answer; shorter than the claim lease.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The WebEngage endpoints the bridge calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Users,
    Events,
    BulkUsers,
    BulkEvents,
    Transaction { campaign_id: String },
}

impl Endpoint {
    /// Transactions have two extra "not retryable" codes (408 TTL expired, 412 user
    /// unreachable).
    fn is_transaction(&self) -> bool {
        matches!(self, Endpoint::Transaction { .. })
    }

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
}

/// What a call means for the rows it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: queued by WebEngage.
    Delivered,
    /// 400 (408/412 for transactions): the data is wrong, retrying cannot help.
    Rejected(String),
    /// 401 (and 403): the key is wrong or lacks permissions; pause everything.
    Unauthorized(String),
    /// 404: wrong host or license code; pause everything.
    NotFound(String),
    /// 429: over the per-minute quota; wait for the next window.
    RateLimited,
    /// 5xx, timeout, connection error, anything unexpected: retry later.
    Transient(String),
}

impl Outcome {
    /// The value stored in `delivery_attempts.outcome`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Rejected(_) => "rejected",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::NotFound(_) => "not_found",
            Outcome::RateLimited => "rate_limited",
            Outcome::Transient(_) => "transient",
        }
    }
}

/// One call's result: the classification plus what the attempt history records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency: Duration,
    /// The start of the response body (or the transport error), at most ~1 KB.
    pub excerpt: Option<String>,
    /// `X-RateLimit-Remaining`: other systems spend the same account quota.
    pub rate_limit_remaining: Option<u32>,
    /// `X-RateLimit-Limit`: the account's per-minute quota for the endpoint.
    pub rate_limit_limit: Option<u32>,
}

impl CallResult {
    pub fn latency_ms(&self) -> i32 {
        i32::try_from(self.latency.as_millis()).unwrap_or(i32::MAX)
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
    #[error("delivery paused: WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set")]
    MissingCredentials,
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

impl WebEngageClient {
    pub fn new(settings: &WebEngageSettings) -> Result<Self, ClientError> {
        let (Some(license_code), Some(api_key)) =
            (settings.license_code.clone(), settings.api_key.clone())
        else {
            return Err(ClientError::MissingCredentials);
        };
        if license_code.is_empty() {
            return Err(ClientError::MissingCredentials);
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            // A redirect means a wrong base URL; following it would turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webengage-bridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebEngageClient {
            http,
            base_url: settings.base_url(),
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

    /// POSTs `body` with `x-request-id: request_id` and classifies the answer.
    pub async fn send(&self, endpoint: &Endpoint, request_id: Uuid, body: &Value) -> CallResult {
        let started = Instant::now();
        let sent = self
            .http
            .post(self.url(endpoint))
            .bearer_auth(self.api_key.load().expose_secret())
            .header("x-request-id", request_id.to_string())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e, started.elapsed()),
        };
        let status = response.status();
        let remaining = header_number(&response, "x-ratelimit-remaining");
        let limit = header_number(&response, "x-ratelimit-limit");
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return transport_failure(&e, started.elapsed()),
        };
        let excerpt = (!text.is_empty()).then(|| truncate(&text, EXCERPT_LIMIT).to_owned());
        CallResult {
            outcome: classify(status, &text, endpoint.is_transaction()),
            http_status: Some(status.as_u16()),
            latency: started.elapsed(),
            excerpt,
            rate_limit_remaining: remaining,
            rate_limit_limit: limit,
        }
    }
}

fn header_number(response: &reqwest::Response, name: &str) -> Option<u32> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A call that got no HTTP answer. The URL is stripped: errors end up in `last_error`.
fn transport_failure(error: &reqwest::Error, latency: Duration) -> CallResult {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    let message = format!("{kind}: {}", describe(error));
    CallResult {
        outcome: Outcome::Transient(message.clone()),
        http_status: None,
        latency,
        excerpt: Some(message),
        rate_limit_remaining: None,
        rate_limit_limit: None,
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

/// Maps an HTTP answer to what the worker does with the rows, per `webengage.md`.
pub fn classify(status: StatusCode, body: &str, transaction: bool) -> Outcome {
    let code = status.as_u16();
    let why = || format!("HTTP {code}: {}", error_message(body));
    match code {
        200..=299 => Outcome::Delivered,
        400 => Outcome::Rejected(why()),
        408 | 412 if transaction => Outcome::Rejected(why()),
        401 | 403 => Outcome::Unauthorized(why()),
        404 => Outcome::NotFound(why()),
        429 => Outcome::RateLimited,
        // 413 and 422 will not get better by trying again either.
        413 | 422 => Outcome::Rejected(why()),
        _ => Outcome::Transient(why()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_webengage_table() {
        let err = r#"{"response":{"status":"error","message":"Invalid userId"}}"#;
        assert_eq!(classify(StatusCode::CREATED, "", false), Outcome::Delivered);
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, err, false),
            Outcome::Rejected("HTTP 400: Invalid userId".into())
        );
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, err, false),
            Outcome::Unauthorized(_)
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, "", false),
            Outcome::NotFound(_)
        ));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, "", false),
            Outcome::RateLimited
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, "", false),
            Outcome::Transient(_)
        ));
        // 408 and 412 are final only for transactional campaigns.
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, "", false),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, "", true),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            classify(StatusCode::PRECONDITION_FAILED, "", true),
            Outcome::Rejected(_)
        ));
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
}
