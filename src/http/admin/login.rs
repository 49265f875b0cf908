//! `/admin/login` and `/admin/logout`: a token typed once becomes a server-side session
//! (the browser holds only its random id); logging out deletes it.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::cookie::Cookie;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::pages::{html, see_other};
use super::session;
use super::views::LoginPage;
use crate::http::AppState;
use crate::http::error::ApiError;

pub async fn form(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.admin.enabled() {
        return Err(ApiError::NotFound(
            "the admin surface is off: set BRIDGE_ADMIN_TOKEN".into(),
        ));
    }
    html(&LoginPage { error: None })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    if !state.admin.enabled() {
        return Err(ApiError::NotFound(
            "the admin surface is off: set BRIDGE_ADMIN_TOKEN".into(),
        ));
    }
    let client = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !state.admin.allow_login_attempt(client) {
        return Err(ApiError::TooManyRequests);
    }
    let Some(role) = state.admin.role_of(form.token.trim()) else {
        let page = LoginPage {
            error: Some("That token is not valid.".into()),
        };
        let mut response = html(&page)?;
        *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    // Behind plain HTTP (tests, a local run) a Secure cookie would never come back.
    let secure = req.connection_info().scheme() == "https";
    let cookie = session::issue(&state, role, form.token.trim(), secure).await?;
    let mut response = see_other("/admin/");
    response
        .add_cookie(&cookie)
        .map_err(|_| ApiError::Internal)?;
    Ok(response)
}

/// Ends the session on the server and in the browser. Harmless to forge (it only logs
/// out), so it needs no CSRF token.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    session::end(&req, &state).await?;
    let mut gone = Cookie::build(session::COOKIE, "").path("/admin").finish();
    gone.make_removal();
    let mut response = see_other("/admin/login");
    let _ = response.add_cookie(&gone);
    Ok(response)
}
