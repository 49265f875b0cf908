//! The admin API's one route table. Each handler's `#[utoipa::path]` states its method
//! and path once; actix registers exactly those and the OpenAPI document
//! (`GET /admin/api/openapi.json`) lists exactly those, so a route cannot exist without
//! being documented, nor be documented with another method than it answers.
//!
//! Every error under `/admin/api` answers JSON (`{"error": {"code", "message"}}`): an
//! unknown route (404), a known path with another method (405 with `Allow`), a path
//! segment, query or body that does not parse (400), a body over the limit (413); the
//! middleware at the end turns any answer actix builds itself into the same shape.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route, web};
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths, PathsBuilder};

use super::{api, api_records, imports, openapi};
use crate::http::error::ApiError;

/// Where the admin API lives; every documented path starts with it.
pub const API_PREFIX: &str = "/admin/api";

/// The largest body an admin API request may carry: they are a few small fields.
pub const MAX_BODY: usize = 64 * 1024;

/// One documented operation and the handler that answers it.
pub struct Endpoint {
    pub path: String,
    pub methods: Vec<HttpMethod>,
    operation: Operation,
    route: Box<dyn Fn(Method) -> Route>,
}

fn endpoint<P, F, Args>(handler: F) -> Endpoint
where
    P: utoipa::Path,
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        path: P::path(),
        methods: P::methods(),
        operation: P::operation(),
        route: Box::new(move |method| web::method(method).to(handler.clone())),
    }
}

/// The table. Order matters where paths overlap: actix tries resources in this order, so a
/// literal path (`/outbox/replay`) comes before the template that would take it
/// (`/outbox/{id}`); `no_path_is_shadowed_by_an_earlier_one` checks it.
pub fn table() -> Vec<Endpoint> {
    vec![
        endpoint::<openapi::__path_document, _, _>(openapi::document),
        endpoint::<api::__path_stats, _, _>(api::stats),
        endpoint::<api::__path_list_outbox, _, _>(api::list_outbox),
        endpoint::<api::__path_replay, _, _>(api::replay),
        endpoint::<api::__path_show_outbox, _, _>(api::show_outbox),
        endpoint::<api::__path_retry, _, _>(api::retry),
        endpoint::<api::__path_cancel, _, _>(api::cancel),
        endpoint::<api::__path_resend, _, _>(api::resend),
        endpoint::<api_records::__path_list_inbound, _, _>(api_records::list_inbound),
        endpoint::<api_records::__path_remap_many, _, _>(api_records::remap_many),
        endpoint::<api_records::__path_show_inbound, _, _>(api_records::show_inbound),
        endpoint::<api_records::__path_remap_one, _, _>(api_records::remap_one),
        endpoint::<api_records::__path_show_job, _, _>(api_records::show_job),
        endpoint::<api_records::__path_erase, _, _>(api_records::erase),
        endpoint::<api_records::__path_audit_log, _, _>(api_records::audit_log),
        endpoint::<imports::__path_list, _, _>(imports::list),
        endpoint::<imports::__path_show, _, _>(imports::show),
        endpoint::<imports::__path_cancel, _, _>(imports::cancel),
    ]
}

/// The `paths` of the OpenAPI document.
pub fn paths() -> Paths {
    table()
        .into_iter()
        .fold(PathsBuilder::new(), |paths, e| {
            e.methods.into_iter().fold(paths, |paths, m| {
                paths.path(e.path.clone(), PathItem::new(m, e.operation.clone()))
            })
        })
        .build()
}

/// Registers the table under `/admin/api`: one resource per path with its methods.
pub fn register(cfg: &mut web::ServiceConfig) {
    let mut by_path: Vec<(String, Vec<(Method, &Endpoint)>)> = Vec::new();
    let endpoints = table();
    for e in &endpoints {
        let relative = e
            .path
            .strip_prefix(API_PREFIX)
            .unwrap_or_else(|| panic!("admin API path {} is outside {API_PREFIX}", e.path));
        let at = match by_path.iter().position(|(p, _)| p == relative) {
            Some(at) => at,
            None => {
                by_path.push((relative.to_owned(), Vec::new()));
                by_path.len() - 1
            }
        };
        by_path[at]
            .1
            .extend(e.methods.iter().map(|m| (actix_method(m), e)));
    }
    let mut scope = web::scope(API_PREFIX)
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::NotFound(format!("no such item: {e}")).into()),
        )
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::BadRequest(format!("the query string does not parse: {e}")).into()
        }))
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_BODY)
                .error_handler(|e, _| json_body_error(e).into()),
        )
        .app_data(web::PayloadConfig::new(MAX_BODY))
        .default_service(web::to(unknown_route));
    for (path, methods) in by_path {
        let allow = methods
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path);
        for (method, e) in methods {
            resource = resource.route((e.route)(method));
        }
        scope = scope.service(resource.default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move { method_not_allowed(&req, allow) }
        })));
    }
    cfg.service(scope.wrap(ErrorHandlers::new().default_handler(errors_as_json)));
}

fn actix_method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

fn json_body_error(e: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match e {
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        E::ContentType => ApiError::UnsupportedMediaType(
            "the body must be JSON (`Content-Type: application/json`)".into(),
        ),
        other => ApiError::BadRequest(format!(
            "the body is not valid JSON for this route: {other}"
        )),
    }
}

/// An optional JSON body: none (only whitespace, or `null`) is the defaults; anything
/// else must parse, so an unreadable body is a 400 and never "the defaults" (for replay,
/// every dead row).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &web::Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            ApiError::BadRequest(format!("the body is not valid JSON for this route: {e}"))
        })
}

/// The admin surface answers 404 everywhere while it is off, whatever the path.
fn surface_off(req: &HttpRequest) -> Option<ApiError> {
    super::access::state_of(req).err()
}

async fn unknown_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(surface_off(&req).unwrap_or_else(|| {
        ApiError::NotFound(format!(
            "no admin API route {}; the routes are listed at {API_PREFIX}/openapi.json",
            req.path().escape_debug()
        ))
    }))
}

/// A path under `/admin` that is no page (the pages' own errors are HTML pages; this
/// one, like every answer actix builds, is JSON as the contract says).
pub(super) async fn unknown_page(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(surface_off(&req).unwrap_or_else(|| {
        ApiError::NotFound(format!(
            "no admin page {} for {}",
            req.path().escape_debug(),
            req.method()
        ))
    }))
}

fn method_not_allowed(req: &HttpRequest, allow: String) -> Result<HttpResponse, ApiError> {
    Err(
        surface_off(req).unwrap_or_else(|| ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        }),
    )
}

/// The safety net: an error answer actix built itself (no body type, or plain text, e.g.
/// a body that broke off or a form that does not parse) becomes `{"error": {"code",
/// "message"}}` with the same status. JSON answers and the pages' HTML error pages
/// are left as they are.
pub(super) fn errors_as_json<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let mut res = crate::http::error::json_error_answer(res);
    // RFC 6750: a 401 names the scheme it wants.
    if res.status() == actix_web::http::StatusCode::UNAUTHORIZED
        && !res.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"admin api\""),
        );
    }
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{x}` matches any one segment, as actix's templates do.
    fn shadows(template: &str, path: &str) -> bool {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
    }

    #[test]
    fn no_path_is_shadowed_by_an_earlier_one() {
        let paths: Vec<String> = table().into_iter().map(|e| e.path).collect();
        for (i, later) in paths.iter().enumerate() {
            for earlier in &paths[..i] {
                assert!(
                    earlier == later || !shadows(earlier, later),
                    "{earlier} is registered before {later} and would answer for it"
                );
            }
        }
        assert!(shadows("/outbox/{id}", "/outbox/replay"));
        assert!(!shadows("/outbox/replay", "/outbox/{id}/retry"));
    }

    #[test]
    fn only_an_absent_body_means_the_defaults() {
        #[derive(Debug, Default, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            dry_run: bool,
        }
        let parse = |text: &'static [u8]| optional_json::<Body>(&web::Bytes::from_static(text));
        for absent in [&b""[..], b" \r\n", b"null"] {
            assert_eq!(parse(absent).unwrap(), Body::default());
        }
        assert_eq!(
            parse(b"{\"dry_run\": true}").unwrap(),
            Body { dry_run: true }
        );
        for unreadable in [
            &b"{"[..],
            b"[]",
            b"dry_run=true",
            b"\xff",
            b"{\"dryrun\": 1}",
        ] {
            assert!(
                matches!(parse(unreadable), Err(ApiError::BadRequest(_))),
                "{unreadable:?}"
            );
        }
    }

    #[test]
    fn every_path_is_under_the_prefix_and_has_a_method() {
        for e in table() {
            assert!(e.path.starts_with(API_PREFIX), "{}", e.path);
            assert!(!e.methods.is_empty(), "{}", e.path);
        }
    }
}
