//! `/admin/...`: the support console's pages. Each handler parses the request, makes one
//! store or ingest call (plus the audit entry of an action), and renders a template.
//! Actions are POST forms that carry a CSRF token bound to the session cookie.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::{PageCaller, Role};
use super::session;
use super::views::{self, Nav};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::console::{self, IssueKind, IssueRows};
use crate::store::support::{self, RowAction};
use crate::support::mask::Reveal;
use crate::support::remap;

/// A rendered page. Pages hold personal data: never cached, never framed.
pub(super) fn html(page: &impl Template) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            // Inline styles and the confirm() handlers are the only scripts there are.
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(page.render()?))
}

/// After an action: back to a page, which shows what happened.
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

fn nav(req: &HttpRequest, state: &AppState, role: Role, notice: &NoticeQuery) -> Nav {
    Nav::new(
        role,
        session::csrf_token(req, &state.admin),
        notice.message(),
    )
}

/// The query every page reads. `notice` and `n` are what an action reports back through
/// its redirect: a known code and a count, so a link cannot put arbitrary words on the
/// page. `reveal` is `all` or `Field,Other`: what a viewer asked to see unmasked.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
    n: Option<u64>,
    reveal: Option<String>,
}

impl NoticeQuery {
    fn message(&self) -> Option<String> {
        let n = self.n.unwrap_or(0);
        let text = match self.notice.as_deref()? {
            "retried" if n > 0 => "Done: the row is due now; the worker picks it up in a moment.",
            "retried" => "Nothing to do: the row is in flight or already delivered.",
            "cancelled" if n > 0 => "Cancelled: the row will never be sent.",
            "cancelled" => "Nothing to do: only waiting or dead rows can be cancelled.",
            "remapped" => {
                return Some(format!(
                    "Re-mapped with today's mappings: {n} outbox row(s) produced."
                ));
            }
            "replayed" => return Some(format!("Replayed {n} dead row(s): they are due now.")),
            _ => return None,
        };
        Some(text.to_owned())
    }
}

/// The CSRF field of every action form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Forms sent with a Bearer header (scripts, tests) need no CSRF token: another site
/// cannot make a browser send that header. Cookie sessions must echo the token.
fn check_csrf(req: &HttpRequest, state: &AppState, presented: &str) -> Result<(), ApiError> {
    if super::auth::bearer(req).is_some() || session::csrf_valid(req, &state.admin, presented) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again".into(),
        ))
    }
}

pub async fn dashboard(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let data = console::dashboard(&state.pool).await?;
    let delivery = crate::http::health::delivery_detail(&state).await;
    let text = |key: &str| delivery[key].as_str().map(str::to_owned);
    html(&views::DashboardPage {
        nav: nav(&req, &state, role, &notice),
        counts: views::STATUSES
            .iter()
            .map(|s| (*s, data.stats.by_status.get(*s).copied().unwrap_or(0)))
            .collect(),
        inbound: data.stats.inbound_by_status.into_iter().collect(),
        oldest_pending: views::age(data.stats.oldest_pending_age_seconds),
        delivery_state: text("state").unwrap_or_else(|| "unknown".into()),
        delivery_reason: text("reason"),
        sources: state
            .registry
            .current()
            .source_ids()
            .map(str::to_owned)
            .collect(),
        mappings_error: state.registry.last_error(),
        last_hour: data.last_hour,
        audit: data.audit.iter().map(views::AuditRow::from).collect(),
    })
}

/// The search form: free text, status, source, user id, and the keyset cursor.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    user_id: String,
    before: Option<i64>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn outbox(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    search: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = support::OutboxFilter {
        q: some(&search.q),
        status: some(&search.status),
        source: some(&search.source),
        user_id: some(&search.user_id),
        ..Default::default()
    };
    let page = support::list_outbox(&state.pool, &filter, 50, search.before).await?;
    // Only the first page of a text search asks why a lead has no rows at all.
    let undelivered = match (&filter.q, search.before) {
        (Some(q), None) => console::undelivered_records(&state.pool, q, 20).await?,
        _ => Vec::new(),
    };
    let reveal = default_reveal(role);
    html(&views::OutboxPage {
        nav: nav(&req, &state, role, &NoticeQuery::default()),
        older: views::OutboxPage::older_href(
            &search.q,
            &search.status,
            &search.source,
            &search.user_id,
            page.next,
        ),
        q: search.q.clone(),
        status: search.status.clone(),
        source: search.source.clone(),
        user_id: search.user_id.clone(),
        statuses: views::STATUSES,
        sources: state
            .registry
            .current()
            .source_ids()
            .map(str::to_owned)
            .collect(),
        rows: page
            .items
            .iter()
            .map(|i| views::RowView::new(i, &reveal))
            .collect(),
        undelivered: undelivered
            .iter()
            .map(|i| views::RecordView::new(i, &reveal))
            .collect(),
    })
}

/// Admins see everything; viewers see masked data until they reveal it.
fn default_reveal(role: Role) -> Reveal {
    match role {
        Role::Admin => Reveal::All,
        Role::Viewer => Reveal::none(),
    }
}

/// What the caller sees. A viewer's reveal is written to the audit log before the
/// page shows anything, so every look at personal data is on record.
async fn reveal_for(
    state: &AppState,
    role: Role,
    asked: Option<&str>,
    target: &str,
) -> Result<Reveal, ApiError> {
    let asked = asked.map(str::trim).filter(|a| !a.is_empty());
    let (Role::Viewer, Some(asked)) = (role, asked) else {
        return Ok(default_reveal(role));
    };
    let reveal = if asked == "all" {
        Reveal::All
    } else {
        Reveal::Fields(asked.split(',').map(|f| f.trim().to_owned()).collect())
    };
    let what = match &reveal {
        Reveal::All => target.to_owned(),
        Reveal::Fields(fields) => format!("{target} fields {}", fields.join(",")),
    };
    support::audit(&state.pool, role.as_str(), "reveal", &what, 1).await?;
    Ok(reveal)
}

pub async fn row(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let detail = support::outbox_detail(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no outbox row {id}")))?;
    let reveal = reveal_for(
        &state,
        role,
        query.reveal.as_deref(),
        &format!("outbox {id}"),
    )
    .await?;
    let nav = nav(&req, &state, role, &query);
    html(&views::RowPage::new(nav, &detail, &reveal))
}

pub async fn inbound(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (record, rows) = console::record_with_rows(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbound record {id}")))?;
    let reveal = reveal_for(
        &state,
        role,
        query.reveal.as_deref(),
        &format!("inbound {id}"),
    )
    .await?;
    let nav = nav(&req, &state, role, &query);
    html(&views::InboundPage::new(nav, &record, &rows, &reveal))
}

pub async fn retry(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &state, &form.csrf)?;
    let rows = support::act_on_row(&state.pool, role.as_str(), RowAction::Retry, *id).await?;
    Ok(see_other(&format!(
        "/admin/outbox/{id}?notice=retried&n={rows}"
    )))
}

pub async fn cancel(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &state, &form.csrf)?;
    let rows = support::act_on_row(&state.pool, role.as_str(), RowAction::Cancel, *id).await?;
    Ok(see_other(&format!(
        "/admin/outbox/{id}?notice=cancelled&n={rows}"
    )))
}

pub async fn remap(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &state, &form.csrf)?;
    let rows = remap::remap_record_audited(
        &state.pool,
        &state.ingest.types,
        &state.registry.current(),
        *id,
        role.as_str(),
    )
    .await?;
    Ok(see_other(&format!(
        "/admin/inbound/{id}?notice=remapped&n={rows}"
    )))
}

pub async fn issues(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let issues = console::issues(&state.pool).await?;
    let view = |kind, list: &[console::Issue]| {
        list.iter()
            .map(|i| views::IssueView::new(kind, i))
            .collect::<Vec<_>>()
    };
    html(&views::IssuesPage {
        nav: nav(&req, &state, role, &notice),
        dead: view(IssueKind::Dead, &issues.dead),
        inbound: view(IssueKind::Inbound, &issues.inbound),
        warnings: view(IssueKind::Warning, &issues.warnings),
    })
}

/// One issue: its kind, source and normalised cause, exactly as `/admin/issues` lists it.
#[derive(Debug, Deserialize)]
pub struct IssueQuery {
    kind: IssueKind,
    source: String,
    cause: String,
}

pub async fn issue_rows(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    issue: web::Query<IssueQuery>,
) -> Result<HttpResponse, ApiError> {
    let found =
        console::issue_rows(&state.pool, issue.kind, &issue.source, &issue.cause, 200).await?;
    let reveal = default_reveal(role);
    let (rows, records) = match &found {
        IssueRows::Outbox(items) => (
            items
                .iter()
                .map(|i| views::RowView::new(i, &reveal))
                .collect(),
            Vec::new(),
        ),
        IssueRows::Inbound(items) => (
            Vec::new(),
            items
                .iter()
                .map(|i| views::RecordView::new(i, &reveal))
                .collect(),
        ),
    };
    let nav = nav(&req, &state, role, &NoticeQuery::default());
    html(&views::IssueRowsPage {
        can_replay: nav.is_admin && issue.kind == IssueKind::Dead && !rows.is_empty(),
        nav,
        kind: issue.kind.as_str(),
        source: issue.source.clone(),
        cause: issue.cause.clone(),
        rows,
        records,
    })
}

#[derive(Debug, Deserialize)]
pub struct ReplayGroupForm {
    #[serde(default)]
    csrf: String,
    source: String,
    cause: String,
}

pub async fn replay_issue(
    PageCaller(role): PageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ReplayGroupForm>,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &state, &form.csrf)?;
    let rows = console::replay_dead_group(&state.pool, &form.source, &form.cause).await?;
    let target = format!("issue dead source={} cause={}", form.source, form.cause);
    support::audit(&state.pool, role.as_str(), "replay", &target, rows).await?;
    Ok(see_other(&format!(
        "/admin/issues?notice=replayed&n={rows}"
    )))
}
