//! `/admin/...`: the support console's pages. Each handler turns the request into domain
//! types, makes one `support` (or read-only store) call, and renders a template. Actions
//! are POST forms that carry the session's CSRF token; one that would change nothing
//! answers 409 with the reason.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::access::PageCaller;
use super::views::{self, Nav};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::console::{self, IssueKind, IssueRows};
use crate::store::support::{self as store, OutboxFilter};
use crate::support::actions::{self, RowAction};
use crate::support::search::{self, SearchTerm, StatusOf};
use crate::support::view::{self, RevealRequest};
use crate::support::{SupportError, remap};

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

pub(super) fn nav(caller: &PageCaller, notice: &NoticeQuery) -> Nav {
    Nav::new(caller.role, caller.csrf.clone(), notice.message())
}

/// A page saying why a request or an action was refused, with the status it deserves
/// (400 a bad search, 404 nothing there, 409 an action that would change nothing).
pub(super) fn refused(
    caller: &PageCaller,
    error: SupportError,
    back: &str,
) -> Result<HttpResponse, ApiError> {
    let (status, title) = match &error {
        SupportError::Conflict(_) => (StatusCode::CONFLICT, "Nothing to do"),
        SupportError::Invalid(_) => (StatusCode::BAD_REQUEST, "Cannot search for that"),
        SupportError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        _ => return Err(error.into()),
    };
    let mut response = html(&views::ErrorPage {
        nav: nav(caller, &NoticeQuery::default()),
        title,
        message: error.to_string(),
        back: back.to_owned(),
    })?;
    *response.status_mut() = status;
    Ok(response)
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
            "retried" => "Done: the row is due now; the worker picks it up in a moment.",
            "cancelled" => "Cancelled: the row will never be sent.",
            "resent" => {
                "Resent: the row is due again under a new x-request-id; the worker sends it in a moment."
            }
            "remapped" => {
                return Some(format!(
                    "Re-mapped with today's mappings: {n} outbox row(s) produced."
                ));
            }
            "replayed" => return Some(format!("Replayed {n} dead row(s): they are due now.")),
            "erased" => {
                return Some(format!(
                    "Erased: {n} stored record(s) and row(s) of that person are gone."
                ));
            }
            _ => return None,
        };
        Some(text.to_owned())
    }

    fn reveal(&self) -> Result<Option<RevealRequest>, SupportError> {
        self.reveal
            .as_deref()
            .map(RevealRequest::try_from)
            .transpose()
    }
}

/// The CSRF field of every action form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn dashboard(
    caller: PageCaller,
    state: web::Data<AppState>,
    notice: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let data = console::dashboard(&state.pool, super::chart::SPAN).await?;
    let delivery = crate::http::health::delivery_detail(&state).await;
    let text = |key: &str| delivery[key].as_str().map(str::to_owned);
    html(&views::DashboardPage {
        nav: nav(&caller, &notice),
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
        drain: match data.stats.backlog.drain_seconds {
            Some(seconds) => views::age(seconds),
            None => "unknown until a worker has started".into(),
        },
        backlog: data.stats.backlog,
        chart: super::chart::BacklogChart::new(&data.minutes, time::OffsetDateTime::now_utc()),
        spool: state.ingest.spool.as_ref().map(|spool| {
            let quarantine = spool.quarantine();
            views::SpoolView {
                waiting: spool.waiting(),
                quarantined: quarantine.entries,
                quarantine_file: quarantine.file.display().to_string(),
            }
        }),
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

impl TryFrom<&SearchQuery> for OutboxFilter {
    type Error = SupportError;

    fn try_from(s: &SearchQuery) -> Result<Self, Self::Error> {
        Ok(OutboxFilter {
            q: SearchTerm::free_text(Some(&s.q), "q")?.map(SearchTerm::into_inner),
            status: search::status(Some(&s.status), StatusOf::Outbox)?,
            source: search::value(Some(&s.source), "source")?,
            user_id: search::value(Some(&s.user_id), "user_id")?,
            ..Default::default()
        })
    }
}

pub async fn outbox(
    caller: PageCaller,
    state: web::Data<AppState>,
    search: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = match OutboxFilter::try_from(&*search) {
        Ok(filter) => filter,
        Err(e) => return refused(&caller, e, "/admin/outbox"),
    };
    let reveal = view::default_reveal(caller.role);
    let page = store::list_outbox(&state.pool, &filter, 50, search.before).await?;
    // Only the first page of a text search asks why a lead has no rows at all.
    let undelivered = match (&filter.q, search.before) {
        (Some(q), None) => console::undelivered_records(&state.pool, q, 20).await?,
        _ => Vec::new(),
    };
    html(&views::OutboxPage {
        nav: nav(&caller, &NoticeQuery::default()),
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
        rows: view::outbox_page(&page, &reveal)
            .items
            .iter()
            .map(views::RowView::new)
            .collect(),
        undelivered: undelivered
            .iter()
            .map(|i| views::RecordView::new(&view::inbound_item(i, &reveal)))
            .collect(),
    })
}

pub async fn row(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked = query.reveal()?;
    let detail = store::outbox_detail(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no outbox row {id}")))?;
    let reveal = view::reveal_for(&state.pool, caller.role, asked, &format!("outbox {id}")).await?;
    let shown = view::outbox_detail(&detail, &reveal);
    html(&views::RowPage::new(nav(&caller, &query), &shown, &reveal))
}

pub async fn inbound(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked = query.reveal()?;
    let (record, rows) = console::record_with_rows(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbound record {id}")))?;
    let reveal =
        view::reveal_for(&state.pool, caller.role, asked, &format!("inbound {id}")).await?;
    let shown = view::inbound_record(&record, &reveal);
    let rows: Vec<_> = rows.iter().map(|r| view::outbox_item(r, &reveal)).collect();
    html(&views::InboundPage::new(
        nav(&caller, &query),
        &shown,
        &rows,
        &reveal,
    ))
}

async fn act_on_row(
    caller: PageCaller,
    state: &AppState,
    id: i64,
    form: &CsrfForm,
    action: RowAction,
    notice: &str,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    let back = format!("/admin/outbox/{id}");
    match actions::act_on_row(&state.pool, caller.role, action, id).await {
        Ok(rows) => Ok(see_other(&format!("{back}?notice={notice}&n={rows}"))),
        Err(e) => refused(&caller, e, &back),
    }
}

pub async fn retry(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    act_on_row(caller, &state, *id, &form, RowAction::Retry, "retried").await
}

pub async fn cancel(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    act_on_row(caller, &state, *id, &form, RowAction::Cancel, "cancelled").await
}

pub async fn resend(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    act_on_row(caller, &state, *id, &form, RowAction::Resend, "resent").await
}

pub async fn remap(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    let back = format!("/admin/inbound/{id}");
    match remap::remap_record_audited(
        &state.pool,
        &state.ingest.types,
        &state.registry.current(),
        *id,
        caller.role,
    )
    .await
    {
        Ok(rows) => Ok(see_other(&format!("{back}?notice=remapped&n={rows}"))),
        Err(e) => refused(&caller, e, &back),
    }
}

pub async fn issues(
    caller: PageCaller,
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
        nav: nav(&caller, &notice),
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
    caller: PageCaller,
    state: web::Data<AppState>,
    issue: web::Query<IssueQuery>,
) -> Result<HttpResponse, ApiError> {
    let found =
        console::issue_rows(&state.pool, issue.kind, &issue.source, &issue.cause, 200).await?;
    let reveal = view::default_reveal(caller.role);
    let (rows, records) = match &found {
        IssueRows::Outbox(items) => (
            items
                .iter()
                .map(|i| views::RowView::new(&view::outbox_item(i, &reveal)))
                .collect(),
            Vec::new(),
        ),
        IssueRows::Inbound(items) => (
            Vec::new(),
            items
                .iter()
                .map(|i| views::RecordView::new(&view::inbound_item(i, &reveal)))
                .collect(),
        ),
    };
    let nav = nav(&caller, &NoticeQuery::default());
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

pub async fn replay_issue(
    caller: PageCaller,
    state: web::Data<AppState>,
    form: web::Form<super::record_pages::IssueGroupForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    match actions::replay_issue(&state.pool, caller.role, &form.source, &form.cause).await {
        Ok(rows) => Ok(see_other(&format!(
            "/admin/issues?notice=replayed&n={rows}"
        ))),
        Err(e) => refused(&caller, e, "/admin/issues"),
    }
}
