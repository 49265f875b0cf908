//! Who may use the admin surface: the admin token reads and acts, the viewer token only
//! reads. No admin token configured means the surface is off (404), never open.
//!
//! The JSON API (`/admin/api`) takes `Authorization: Bearer` only: a browser's session
//! cookie is not accepted there, so no other site can make a logged-in browser call it.
//! The pages take the Bearer header (scripts, tests) or the session cookie; a cookie's
//! forms must echo the session's CSRF token.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::Method, web};
use futures_util::future::LocalBoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session;
use crate::http::AppState;
use crate::http::error::ApiError;
pub use crate::support::Role;

/// The configured tokens; empty strings count as unset. Also holds the login rate
/// limit, so that every server worker of one app shares it.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    admin: Option<SecretString>,
    viewer: Option<SecretString>,
    logins: Arc<LoginLimiter>,
    /// The stored random key of session MACs, read from the database once.
    session_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
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
            session_key: Arc::default(),
        }
    }

    /// The random key stored in the database (`admin_keys`), read once.
    pub(super) async fn session_key(&self, pool: &sqlx::PgPool) -> Result<&[u8], sqlx::Error> {
        self.session_key
            .get_or_try_init(|| crate::store::sessions::key(pool))
            .await
            .map(Vec::as_slice)
    }

    /// Counts one login attempt from `client`; false once it made too many this minute.
    pub fn allow_login_attempt(&self, client: IpAddr) -> bool {
        let allowed = self.logins.0.check_key(&client).is_ok();
        self.logins.0.retain_recent();
        allowed
    }

    pub fn enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// The token that grants `role` today, if one is configured.
    pub(super) fn token_of(&self, role: Role) -> Option<&str> {
        match role {
            Role::Admin => self.admin.as_ref(),
            Role::Viewer => self.viewer.as_ref(),
            Role::Cli => None,
        }
        .map(|t| t.expose_secret())
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
pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// An authenticated caller of the JSON API (Bearer only). Reading needs any token;
/// anything but GET/HEAD needs the admin token.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller(pub Role);

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(api_caller(req))
    }
}

pub(super) fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::NotFound("not found".into()))?;
    if !state.admin.enabled() {
        return Err(ApiError::NotFound(
            "the admin surface is off: set BRIDGE_ADMIN_TOKEN".into(),
        ));
    }
    Ok(state.clone())
}

fn api_caller(req: &HttpRequest) -> Result<ApiCaller, ApiError> {
    let state = state_of(req)?;
    let role = bearer(req)
        .and_then(|token| state.admin.role_of(&token))
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the admin API takes `Authorization: Bearer <admin or viewer token>`".into(),
            )
        })?;
    check_method(req, role)?;
    Ok(ApiCaller(role))
}

fn check_method(req: &HttpRequest, role: Role) -> Result<(), ApiError> {
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if role.may_act() || reading {
        Ok(())
    } else {
        Err(ApiError::Forbidden("the viewer token may only read".into()))
    }
}

/// A caller of the pages: Bearer, or a stored session. Someone not logged in is sent to
/// the login form instead of getting a JSON 401.
#[derive(Debug, Clone)]
pub struct PageCaller {
    pub role: Role,
    /// The session's CSRF token; `None` for Bearer callers, who need none.
    pub csrf: Option<String>,
}

impl FromRequest for PageCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req)?;
            let caller = match bearer(&req) {
                Some(token) => state
                    .admin
                    .role_of(&token)
                    .map(|role| PageCaller { role, csrf: None }),
                None => session::find(&req, &state).await?.map(|s| PageCaller {
                    role: s.role,
                    csrf: Some(s.csrf),
                }),
            }
            .ok_or(ApiError::LoginRequired)?;
            check_method(&req, caller.role)?;
            Ok(caller)
        })
    }
}

impl PageCaller {
    /// Forms sent with a Bearer header need no CSRF token: another site cannot make a
    /// browser send that header. Session forms must echo their session's token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), ApiError> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if constant_time_eq(expected, presented) => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again".into(),
            )),
        }
    }
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

    #[test]
    fn a_session_form_needs_its_own_csrf_token_and_a_bearer_form_none() {
        let session = PageCaller {
            role: Role::Admin,
            csrf: Some("abc123".into()),
        };
        assert!(session.check_csrf("abc123").is_ok());
        assert!(session.check_csrf("abc124").is_err());
        assert!(session.check_csrf("").is_err());
        let script = PageCaller {
            role: Role::Admin,
            csrf: None,
        };
        assert!(script.check_csrf("").is_ok());
    }
}
