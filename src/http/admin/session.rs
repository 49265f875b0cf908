//! Browser sessions for the admin pages: a signed, HttpOnly, SameSite=Strict cookie
//! holding the role and an expiry. Never the token itself.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::auth::{AdminTokens, Role};

pub const COOKIE: &str = "wb_session";
const LIFETIME_SECS: i64 = 8 * 3600;

fn sign(key: &[u8; 32], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length works for HMAC");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn verify(key: &[u8; 32], message: &str, signature: &str) -> bool {
    let Ok(bytes) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length works for HMAC");
    mac.update(message.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

/// A cookie for a role, valid for eight hours.
pub fn issue(tokens: &AdminTokens, role: Role, secure: bool) -> Option<Cookie<'static>> {
    let key = tokens.session_key()?;
    let expires = jiff::Timestamp::now().as_second() + LIFETIME_SECS;
    let message = format!("{}.{expires}", role.as_str());
    let value = format!("{message}.{}", sign(&key, &message));
    Some(
        Cookie::build(COOKIE, value)
            .path("/admin")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(actix_web::cookie::time::Duration::seconds(LIFETIME_SECS))
            .finish(),
    )
}

/// The role of a valid, unexpired session cookie.
pub fn role_from_cookie(req: &HttpRequest, tokens: &AdminTokens) -> Option<Role> {
    let cookie = req.cookie(COOKIE)?;
    let key = tokens.session_key()?;
    let (message, signature) = cookie.value().rsplit_once('.')?;
    if !verify(&key, message, signature) {
        return None;
    }
    let (role, expires) = message.split_once('.')?;
    if expires.parse::<i64>().ok()? < jiff::Timestamp::now().as_second() {
        return None;
    }
    match role {
        "admin" => Some(Role::Admin),
        "viewer" => Some(Role::Viewer),
        _ => None,
    }
}

/// The CSRF token forms must echo: bound to the session cookie, so another site cannot forge it.
pub fn csrf_token(req: &HttpRequest, tokens: &AdminTokens) -> Option<String> {
    let cookie = req.cookie(COOKIE)?;
    Some(sign(
        &tokens.session_key()?,
        &format!("csrf\0{}", cookie.value()),
    ))
}

pub fn csrf_valid(req: &HttpRequest, tokens: &AdminTokens, presented: &str) -> bool {
    let Some(cookie) = req.cookie(COOKIE) else {
        return false;
    };
    let Some(key) = tokens.session_key() else {
        return false;
    };
    verify(&key, &format!("csrf\0{}", cookie.value()), presented)
}
