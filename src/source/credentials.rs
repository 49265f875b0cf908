//! Webhook credentials: the checks a mapping file's `source.auth` asks for. Every
//! configured option must pass; secrets are compared in constant time and never appear
//! in an error. The checks run in the order their inputs arrive: the headers and query
//! before the body is read ([`verify_head`]), an HMAC over the raw bytes before any
//! parse ([`verify_signature`]), and a Salesforce organization id, which only the parsed
//! body carries ([`verify_organization`]).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::InboundRequest;

/// The credentials a source expects, resolved from the environment at load time.
/// Everything `None`/empty means the mapping file said `auth: none`.
#[derive(Debug, Clone, Default)]
pub struct AuthSpec {
    pub bearer: Option<SecretString>,
    pub header: Option<HeaderAuth>,
    pub basic: Option<BasicAuth>,
    pub hmac_sha256: Option<HmacAuth>,
    pub query: Option<QueryAuth>,
    /// Salesforce org ids (15- or 18-character forms); checked after the body is parsed.
    pub organization_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HeaderAuth {
    pub name: String,
    pub value: SecretString,
}

#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub username: SecretString,
    pub password: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacEncoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone)]
pub struct HmacAuth {
    pub header: String,
    pub secret: SecretString,
    pub encoding: HmacEncoding,
    /// Text before the signature in the header, e.g. `sha256=`.
    pub prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueryAuth {
    pub name: String,
    pub value: SecretString,
}

/// Why a request was refused. Names what failed, never the expected or received secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or wrong bearer token")]
    Bearer,
    #[error("missing or wrong value in header {0}")]
    Header(String),
    #[error("missing or wrong basic credentials")]
    Basic,
    #[error("missing or invalid HMAC-SHA256 signature in header {0}")]
    Hmac(String),
    #[error("missing or wrong query parameter {0}")]
    Query(String),
    #[error("organization id is not one this source accepts")]
    Organization,
}

/// True when the source asked for no authentication at all (`auth: none`).
pub fn is_open(spec: &AuthSpec) -> bool {
    spec.bearer.is_none()
        && spec.header.is_none()
        && spec.basic.is_none()
        && spec.hmac_sha256.is_none()
        && spec.query.is_none()
        && spec.organization_ids.is_empty()
}

/// Checks the options carried outside the body (bearer, header, basic, query): the
/// request's head only, so an unauthenticated sender is refused before its body is
/// read. All must pass; the first failure is reported.
pub fn verify_head(spec: &AuthSpec, req: &InboundRequest) -> Result<(), AuthError> {
    if let Some(token) = &spec.bearer {
        let given = credentials(req, "bearer").ok_or(AuthError::Bearer)?;
        if !secret_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
            return Err(AuthError::Bearer);
        }
    }
    if let Some(header) = &spec.header {
        let fail = || AuthError::Header(header.name.clone());
        let given = req.header(&header.name).ok_or_else(fail)?;
        if !secret_eq(given.as_bytes(), header.value.expose_secret().as_bytes()) {
            return Err(fail());
        }
    }
    if let Some(basic) = &spec.basic {
        verify_basic(basic, req)?;
    }
    if let Some(query) = &spec.query {
        let fail = || AuthError::Query(query.name.clone());
        // A repeated parameter counts by its first value, as repeated headers do.
        let given = url::form_urlencoded::parse(req.query.as_bytes())
            .find(|(name, _)| name == query.name.as_str())
            .map(|(_, value)| value)
            .ok_or_else(fail)?;
        if !secret_eq(given.as_bytes(), query.value.expose_secret().as_bytes()) {
            return Err(fail());
        }
    }
    Ok(())
}

/// Checks `hmac_sha256` (when configured) over the raw body, before anything parses it.
pub fn verify_signature(spec: &AuthSpec, req: &InboundRequest) -> Result<(), AuthError> {
    match &spec.hmac_sha256 {
        Some(hmac) => verify_hmac(hmac, req),
        None => Ok(()),
    }
}

/// Passes when no organization ids are configured; otherwise the received id must match
/// one of them on its first 15 characters (case-sensitive: the 15-character form is the
/// case-sensitive one, the 18-character form only appends a checksum).
pub fn verify_organization(spec: &AuthSpec, org_id: &str) -> Result<(), AuthError> {
    if spec.organization_ids.is_empty() {
        return Ok(());
    }
    let received = org15(org_id).as_bytes();
    // Every configured id is compared, so the time taken does not say which one matched.
    let matched = spec
        .organization_ids
        .iter()
        .fold(Choice::from(0), |acc, id| {
            acc | received.ct_eq(org15(id).as_bytes())
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthError::Organization)
    }
}

fn org15(id: &str) -> &str {
    let id = id.trim();
    id.char_indices().nth(15).map_or(id, |(end, _)| &id[..end])
}

/// The credentials of an `Authorization: <scheme> <credentials>` header; the scheme is
/// case-insensitive (RFC 9110).
fn credentials<'r>(req: &'r InboundRequest, scheme: &str) -> Option<&'r str> {
    let (given_scheme, rest) = req.header("authorization")?.trim().split_once(' ')?;
    given_scheme
        .eq_ignore_ascii_case(scheme)
        .then(|| rest.trim())
}

fn verify_basic(basic: &BasicAuth, req: &InboundRequest) -> Result<(), AuthError> {
    let encoded = credentials(req, "basic").ok_or(AuthError::Basic)?;
    let decoded = decode_base64(encoded).ok_or(AuthError::Basic)?;
    // Compared as a whole `user:pass`, so the timing cannot tell which half was wrong.
    let expected = format!(
        "{}:{}",
        basic.username.expose_secret(),
        basic.password.expose_secret()
    );
    if secret_eq(&decoded, expected.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Basic)
    }
}

fn verify_hmac(hmac: &HmacAuth, req: &InboundRequest) -> Result<(), AuthError> {
    let fail = || AuthError::Hmac(hmac.header.clone());
    let mut given = req.header(&hmac.header).ok_or_else(fail)?.trim();
    if let Some(prefix) = hmac.prefix.as_deref().filter(|p| !p.is_empty()) {
        // Senders differ in case (`sha256=` vs `SHA256=`); the prefix carries no secret.
        let head = given
            .get(..prefix.len())
            .filter(|h| h.eq_ignore_ascii_case(prefix))
            .ok_or_else(fail)?;
        given = given[head.len()..].trim_start();
    }
    let signature = match hmac.encoding {
        HmacEncoding::Hex => hex::decode(given).ok(),
        HmacEncoding::Base64 => decode_base64(given),
    }
    .ok_or_else(fail)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(hmac.secret.expose_secret().as_bytes())
        .map_err(|_| fail())?;
    mac.update(&req.body);
    // verify_slice compares in constant time (and refuses a wrong length).
    mac.verify_slice(&signature).map_err(|_| fail())
}

/// Standard or URL-safe alphabet, padding optional: senders disagree on both.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(text))
        .ok()
}

/// Constant-time equality that also hides the expected length: both sides are hashed
/// first, so only equal-length digests are ever compared.
fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.as_slice().ct_eq(expected.as_slice()).into()
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
