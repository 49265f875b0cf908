//! Browser sessions for the admin pages, stored server-side: the cookie holds a random
//! id (HttpOnly, SameSite=Strict), the database its hash, the role, the CSRF token and a
//! MAC of the token that logged in. Logging out deletes the session, and rotating a
//! token ends the sessions it opened. The token itself is stored nowhere.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::access::Role;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::sessions;

pub const COOKIE: &str = "wb_session";
const LIFETIME_SECS: i64 = 8 * 3600;

/// A valid session of a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub csrf: String,
}

fn mac(key: &[u8], token: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length works for HMAC");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The session id of the request's cookie, hashed as stored.
fn id_hash(req: &HttpRequest) -> Option<Vec<u8>> {
    let cookie = req.cookie(COOKIE)?;
    let id = hex::decode(cookie.value())
        .ok()
        .filter(|id| id.len() == 32)?;
    Some(Sha256::digest(&id).to_vec())
}

/// Opens a session for `role`, logged in with `token`; returns its cookie (eight hours).
pub async fn issue(
    state: &AppState,
    role: Role,
    token: &str,
    secure: bool,
) -> Result<Cookie<'static>, ApiError> {
    let key = state.admin.session_key(&state.pool).await?;
    let id: [u8; 32] = rand::random();
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(LIFETIME_SECS);
    sessions::create(
        &state.pool,
        &Sha256::digest(id),
        role.as_str(),
        &mac(key, token),
        &csrf,
        expires,
    )
    .await?;
    Ok(Cookie::build(COOKIE, hex::encode(id))
        .path("/admin")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(LIFETIME_SECS))
        .finish())
}

/// The request's session, when its cookie names a stored, unexpired session whose
/// token is still the one configured for its role.
pub async fn find(req: &HttpRequest, state: &AppState) -> Result<Option<Session>, ApiError> {
    let Some(hash) = id_hash(req) else {
        return Ok(None);
    };
    let Some(stored) = sessions::find(&state.pool, &hash).await? else {
        return Ok(None);
    };
    let role = match stored.role.as_str() {
        "admin" => Role::Admin,
        "viewer" => Role::Viewer,
        _ => return Ok(None),
    };
    let Some(token) = state.admin.token_of(role) else {
        return Ok(None);
    };
    let key = state.admin.session_key(&state.pool).await?;
    let current: bool =
        subtle::ConstantTimeEq::ct_eq(&mac(key, token)[..], &stored.token_mac[..]).into();
    Ok(current.then_some(Session {
        role,
        csrf: stored.csrf,
    }))
}

/// Ends the request's session on the server (an old copy of the cookie opens nothing).
pub async fn end(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if let Some(hash) = id_hash(req) {
        sessions::delete(&state.pool, &hash).await?;
    }
    Ok(())
}
