//! The console's pages for many records at once: the CRM records list, bulk re-maps
//! run as background jobs (and their progress page), and erasure of one person.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::access::PageCaller;
use super::pages::{NoticeQuery, html, nav, refused, see_other};
use super::views;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::InboundStatus;
use crate::store::support::{self as store, InboundFilter};
use crate::support::SupportError;
use crate::support::erase::{self, Person, PersonRequest};
use crate::support::jobs;
use crate::support::remap::RemapSelection;
use crate::support::search::{self, StatusOf};
use crate::support::view;

pub async fn erase_form(caller: PageCaller) -> Result<HttpResponse, ApiError> {
    html(&views::ErasePage {
        nav: nav(&caller, &NoticeQuery::default()),
    })
}

#[derive(Debug, Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    csrf: String,
    by: String,
    value: String,
}

impl TryFrom<&EraseForm> for Person {
    type Error = SupportError;

    fn try_from(f: &EraseForm) -> Result<Self, Self::Error> {
        let value = Some(f.value.clone());
        Person::try_from(match f.by.as_str() {
            "user" => PersonRequest {
                user: value,
                ..Default::default()
            },
            "email" => PersonRequest {
                email: value,
                ..Default::default()
            },
            "phone" => PersonRequest {
                phone: value,
                ..Default::default()
            },
            _ => {
                return Err(SupportError::Invalid(
                    "erase by email, phone or user".into(),
                ));
            }
        })
    }
}

pub async fn erase(
    caller: PageCaller,
    state: web::Data<AppState>,
    form: web::Form<EraseForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    let backlog = state.ingest.spool.as_ref().is_some_and(|s| s.has_backlog());
    let erased = match Person::try_from(&*form) {
        Ok(person) => erase::erase(&state.pool, caller.role, &person, backlog).await,
        Err(e) => Err(e),
    };
    match erased {
        Ok(erased) => Ok(see_other(&format!(
            "/admin/?notice=erased&n={}",
            erased.inbound_records + erased.outbox_rows
        ))),
        Err(e) => refused(&caller, e, "/admin/erase"),
    }
}

/// The CRM records list: status, source, keyset cursor.
#[derive(Debug, Default, Deserialize)]
pub struct RecordsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    source: String,
    before: Option<i64>,
}

impl TryFrom<&RecordsQuery> for InboundFilter {
    type Error = SupportError;

    fn try_from(q: &RecordsQuery) -> Result<Self, Self::Error> {
        Ok(InboundFilter {
            status: search::status(Some(&q.status), StatusOf::Inbound)?,
            source: search::value(Some(&q.source), "source")?,
        })
    }
}

pub async fn records(
    caller: PageCaller,
    state: web::Data<AppState>,
    query: web::Query<RecordsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = match InboundFilter::try_from(&*query) {
        Ok(filter) => filter,
        Err(e) => return refused(&caller, e, "/admin/inbound"),
    };
    let reveal = view::default_reveal(caller.role);
    let page = store::list_inbound(&state.pool, &filter, 50, query.before).await?;
    // "Re-map all" needs a status: re-mapping every record ever received is not a
    // button anyone means to press.
    let matching = match filter.status {
        Some(_) => {
            RemapSelection::Matching(filter.clone())
                .count(&state.pool)
                .await?
        }
        None => 0,
    };
    let nav = nav(&caller, &NoticeQuery::default());
    html(&views::RecordsPage {
        can_remap: nav.is_admin && matching > 0,
        nav,
        older: views::RecordsPage::older_href(&query.status, &query.source, page.next),
        status: query.status.clone(),
        source: query.source.clone(),
        statuses: InboundStatus::ALL.iter().map(|s| s.as_str()).collect(),
        sources: state
            .registry
            .current()
            .source_ids()
            .map(str::to_owned)
            .collect(),
        records: view::inbound_page(&page, &reveal)
            .items
            .iter()
            .map(views::RecordView::new)
            .collect(),
        matching,
    })
}

#[derive(Debug, Deserialize)]
pub struct RemapAllForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    source: String,
}

impl TryFrom<&RemapAllForm> for RemapSelection {
    type Error = SupportError;

    fn try_from(f: &RemapAllForm) -> Result<Self, Self::Error> {
        let status = search::status(Some(&f.status), StatusOf::Inbound)?
            .ok_or_else(|| SupportError::Invalid("choose the status to re-map".into()))?;
        Ok(RemapSelection::Matching(InboundFilter {
            status: Some(status),
            source: search::value(Some(&f.source), "source")?,
        }))
    }
}

async fn start_remap(
    caller: &PageCaller,
    state: &AppState,
    selection: Result<RemapSelection, SupportError>,
    back: &str,
) -> Result<HttpResponse, ApiError> {
    let started = match selection {
        Ok(selection) => {
            jobs::start_remap(
                &state.pool,
                state.ingest.types.clone(),
                state.registry.current(),
                selection,
                caller.role,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(job) => Ok(see_other(&format!("/admin/jobs/{}", job.id))),
        Err(e) => refused(caller, e, back),
    }
}

pub async fn remap_all(
    caller: PageCaller,
    state: web::Data<AppState>,
    form: web::Form<RemapAllForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    let selection = RemapSelection::try_from(&*form);
    start_remap(&caller, &state, selection, "/admin/inbound").await
}

#[derive(Debug, Deserialize)]
pub struct IssueGroupForm {
    #[serde(default)]
    pub(super) csrf: String,
    pub(super) source: String,
    pub(super) cause: String,
}

pub async fn remap_issue(
    caller: PageCaller,
    state: web::Data<AppState>,
    form: web::Form<IssueGroupForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    let selection = Ok(RemapSelection::Issue {
        source: form.source.clone(),
        cause: form.cause.clone(),
    });
    start_remap(&caller, &state, selection, "/admin/issues").await
}

pub async fn job(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let job = match jobs::job(&state.pool, *id).await {
        Ok(job) => job,
        Err(e) => return refused(&caller, e, "/admin/inbound"),
    };
    html(&views::JobPage::new(
        nav(&caller, &NoticeQuery::default()),
        job,
    ))
}
