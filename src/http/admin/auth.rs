//! Who is calling the admin surface: the admin token reads and acts, the viewer token
//! only reads. No admin token configured means the surface is off (404), never open.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::Method, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::AppState;
use crate::http::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// The configured tokens; empty strings count as unset. Also holds the login rate
/// limit, so that every server worker of one app shares it.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    admin: Option<SecretString>,
    viewer: Option<SecretString>,
    logins: Arc<LoginLimiter>,
}

/// Login attempts per client address: enough for a person who mistypes, too few to
/// guess a token.
pub struct LoginLimiter(DefaultKeyedRateLimiter<IpAddr>);

impl Default for LoginLimiter {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(10).expect("non-zero");
        LoginLimiter(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

impl AdminTokens {
    pub fn new(admin: Option<SecretString>, viewer: Option<SecretString>) -> Self {
        let set = |t: Option<SecretString>| t.filter(|t| !t.expose_secret().trim().is_empty());
        AdminTokens {
            admin: set(admin),
            viewer: set(viewer),
            logins: Arc::default(),
        }
    }

    /// Counts one login attempt from `client`; false once it made too many this minute.
    pub fn allow_login_attempt(&self, client: IpAddr) -> bool {
        let allowed = self.logins.0.check_key(&client).is_ok();
        self.logins.0.retain_recent();
        allowed
    }

    /// The key that signs session cookies: derived from the admin token, so rotating
    /// the token ends every session.
    pub(super) fn session_key(&self) -> Option<[u8; 32]> {
        let admin = self.admin.as_ref()?;
        Some(
            Sha256::digest(
                format!("webengage-bridge session\0{}", admin.expose_secret()).as_bytes(),
            )
            .into(),
        )
    }

    pub fn enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// The role a presented token grants, compared in constant time.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let matches = |t: &Option<SecretString>| {
            t.as_ref()
                .is_some_and(|t| constant_time_eq(t.expose_secret(), presented))
        };
        // Evaluate both so timing does not reveal which token matched.
        let (admin, viewer) = (matches(&self.admin), matches(&self.viewer));
        if admin {
            Some(Role::Admin)
        } else if viewer {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

/// Hashing both sides first keeps the comparison constant-time in their lengths too.
fn constant_time_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// An authenticated caller of the admin API. Reading needs any token; anything but
/// GET/HEAD needs the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Role);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

/// A caller of the pages: like [`Caller`], but someone not logged in is sent to the
/// login form instead of getting a JSON 401.
#[derive(Debug, Clone, Copy)]
pub struct PageCaller(pub Role);

impl FromRequest for PageCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authorize(req)
                .map(|c| PageCaller(c.0))
                .map_err(|e| match e {
                    ApiError::Unauthorized(_) => ApiError::LoginRequired,
                    other => other,
                }),
        )
    }
}

fn authorize(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::NotFound("not found".into()))?;
    if !state.admin.enabled() {
        return Err(ApiError::NotFound(
            "the admin surface is off: set BRIDGE_ADMIN_TOKEN".into(),
        ));
    }
    let role = match bearer(req) {
        Some(token) => state.admin.role_of(&token),
        None => super::session::role_from_cookie(req, &state.admin),
    }
    .ok_or_else(|| ApiError::Unauthorized("a valid admin or viewer token is required".into()))?;
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if role == Role::Viewer && !reading {
        return Err(ApiError::Forbidden("the viewer token may only read".into()));
    }
    Ok(Caller(role))
}

/// The Bearer token of a request, if it carries one (scripts and tests; browsers use the cookie).
pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grant_their_roles_and_empty_tokens_are_unset() {
        let tokens = AdminTokens::new(
            Some("adm".to_owned().into()),
            Some("view".to_owned().into()),
        );
        assert_eq!(tokens.role_of("adm"), Some(Role::Admin));
        assert_eq!(tokens.role_of("view"), Some(Role::Viewer));
        assert_eq!(tokens.role_of("adm "), None);
        assert_eq!(tokens.role_of(""), None);
        let off = AdminTokens::new(Some(String::new().into()), None);
        assert!(!off.enabled());
        assert_eq!(off.role_of(""), None);
    }
}
