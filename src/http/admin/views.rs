//! What the pages show: askama templates and the view models they read, built from
//! store rows that `support::view` has already masked for the caller (the same masking
//! the admin API answers with). No SQL, no HTTP, no masking decisions here.

use askama::Template;
use serde_json::Value;
use time::OffsetDateTime;

use super::access::Role;
use crate::store::OutboxStatus;
use crate::store::console::{Issue, IssueKind, LastHour};
use crate::store::support::{AttemptItem, AuditEntry, InboundItem, OutboxItem};
use crate::support::mask::Reveal;
use crate::support::view::{ShownDetail, ShownRecord};

pub const STATUSES: [&str; 5] = OutboxStatus::NAMES;

/// The header every page shares: who is logged in and the CSRF token its forms echo.
pub struct Nav {
    pub role: &'static str,
    pub is_admin: bool,
    /// Empty for Bearer callers, who need none.
    pub csrf: String,
    pub notice: Option<String>,
}

impl Nav {
    pub fn new(role: Role, csrf: Option<String>, notice: Option<String>) -> Self {
        Nav {
            role: role.as_str(),
            is_admin: role == Role::Admin,
            csrf: csrf.unwrap_or_default(),
            notice,
        }
    }
}

/// `2026-11-26 04:40:44Z`: UTC, to the second, the same everywhere on the console.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `3h 12m`, `45s`: an age at a glance.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct LoginPage {
    pub error: Option<String>,
}

pub struct AuditRow {
    pub at: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub rows: i64,
}

impl From<&AuditEntry> for AuditRow {
    fn from(a: &AuditEntry) -> Self {
        AuditRow {
            at: when(a.at),
            role: a.role.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            rows: a.rows,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    pub nav: Nav,
    /// Every status, zeros included, in the order a row moves through them.
    pub counts: Vec<(&'static str, i64)>,
    pub inbound: Vec<(String, i64)>,
    pub oldest_pending: String,
    pub delivery_state: String,
    pub delivery_reason: Option<String>,
    pub sources: Vec<String>,
    pub mappings_error: Option<String>,
    pub last_hour: LastHour,
    pub audit: Vec<AuditRow>,
    pub backlog: crate::store::backlog::Backlog,
    pub drain: String,
    pub chart: super::chart::BacklogChart,
    pub spool: Option<SpoolView>,
}

/// The local spool (`BRIDGE_SPOOL_DIR`): what waits for Postgres and what it refused.
pub struct SpoolView {
    pub waiting: u64,
    pub quarantined: u64,
    pub quarantine_file: String,
}

/// One outbox row in a list.
pub struct RowView {
    pub id: i64,
    pub href: String,
    pub source: String,
    pub rule: String,
    pub kind: String,
    pub user_id: String,
    pub status: String,
    pub attempts: i32,
    pub created: String,
    pub next_attempt: String,
    pub delivered: String,
    pub last_error: String,
}

impl RowView {
    /// A row as `support::view` shows it to the caller.
    pub fn new(item: &OutboxItem) -> Self {
        RowView {
            id: item.id,
            href: format!("/admin/outbox/{}", item.id),
            source: item.source.clone(),
            rule: item.rule.clone(),
            kind: item.kind.as_str().to_owned(),
            user_id: item.user_id.clone().unwrap_or_default(),
            status: item.status.to_string(),
            attempts: item.attempts,
            created: when(item.created_at),
            next_attempt: when(item.next_attempt_at),
            delivered: item.delivered_at.map(when).unwrap_or_default(),
            last_error: item.last_error.clone().unwrap_or_default(),
        }
    }
}

/// One inbound record: the CRM's data as received, masked for viewers.
pub struct RecordView {
    pub id: i64,
    pub href: String,
    pub source: String,
    pub dedupe_key: String,
    pub status: String,
    pub received: String,
    pub content_type: String,
    /// The parsed record, or the raw body of one that could not be parsed.
    pub record: String,
    pub warnings: Vec<String>,
    pub error: String,
    pub request_id: String,
    pub masked_fields: Vec<String>,
}

impl RecordView {
    /// A record as `support::view` shows it to the caller.
    pub fn new(item: &InboundItem) -> Self {
        Self::shown(item, Vec::new())
    }

    pub fn with_fields(shown: &ShownRecord) -> Self {
        Self::shown(&shown.record, shown.masked_fields.clone())
    }

    fn shown(item: &InboundItem, masked_fields: Vec<String>) -> Self {
        let record = match (&item.payload, &item.raw_body) {
            (Some(payload), _) => pretty(payload),
            (None, Some(raw)) => raw.clone(),
            (None, None) => String::new(),
        };
        let warnings = item
            .warnings
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        RecordView {
            id: item.id,
            href: format!("/admin/inbound/{}", item.id),
            source: item.source.clone(),
            dedupe_key: item.dedupe_key.clone(),
            status: item.status.to_string(),
            received: when(item.received_at),
            content_type: item.content_type.clone().unwrap_or_default(),
            record,
            warnings: warnings.into_iter().map(str::to_owned).collect(),
            error: item.error.clone().unwrap_or_default(),
            request_id: item.request_id.clone().unwrap_or_default(),
            masked_fields,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/outbox.html")]
pub struct OutboxPage {
    pub nav: Nav,
    pub q: String,
    pub status: String,
    pub source: String,
    pub user_id: String,
    pub statuses: [&'static str; 5],
    pub sources: Vec<String>,
    pub rows: Vec<RowView>,
    pub older: Option<String>,
    /// Records matching `q` that produced nothing to deliver.
    pub undelivered: Vec<RecordView>,
}

impl OutboxPage {
    /// The link to the next (older) page, keeping the filters.
    pub fn older_href(
        q: &str,
        status: &str,
        source: &str,
        user_id: &str,
        before: Option<i64>,
    ) -> Option<String> {
        let before = before?.to_string();
        Some(format!(
            "/admin/outbox?{}",
            query(&[
                ("q", q),
                ("status", status),
                ("source", source),
                ("user_id", user_id),
                ("before", &before),
            ])
        ))
    }
}

pub struct AttemptView {
    pub at: String,
    pub http_status: String,
    pub outcome: String,
    pub latency_ms: i32,
    pub response: String,
}

impl AttemptView {
    fn new(a: &AttemptItem) -> Self {
        AttemptView {
            at: when(a.attempted_at),
            http_status: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
            outcome: a.outcome.clone(),
            latency_ms: a.latency_ms,
            response: a.response_excerpt.clone().unwrap_or_default(),
        }
    }
}

/// A "reveal" link for one masked field.
pub struct RevealLink {
    pub field: String,
    pub href: String,
}

fn reveal_links(base: &str, fields: &[String], revealed: &[String]) -> Vec<RevealLink> {
    fields
        .iter()
        .map(|f| {
            let mut list = revealed.to_vec();
            list.push(f.clone());
            RevealLink {
                field: f.clone(),
                href: format!("{base}?{}", query(&[("reveal", &list.join(","))])),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin/row.html")]
pub struct RowPage {
    pub nav: Nav,
    pub row: RowView,
    pub request_id: String,
    pub body: String,
    pub mapping_hash: String,
    pub attempts: Vec<AttemptView>,
    /// Attempts that count toward the retry limit (a 429 or a pause is listed, not counted).
    pub charged_attempts: i32,
    pub inbound: Option<RecordView>,
    pub masked: bool,
    pub reveal_all_href: String,
    pub reveal_links: Vec<RevealLink>,
    pub can_retry: bool,
    pub can_cancel: bool,
    pub can_resend: bool,
}

impl RowPage {
    pub fn new(nav: Nav, shown: &ShownDetail, reveal: &Reveal) -> Self {
        let detail = &shown.detail;
        let base = format!("/admin/outbox/{}", detail.item.id);
        let revealed = match reveal {
            Reveal::All => Vec::new(),
            Reveal::Fields(f) => f.clone(),
        };
        let status = detail.item.status;
        RowPage {
            can_retry: nav.is_admin && status.can_retry(),
            can_cancel: nav.is_admin && status.can_cancel(),
            can_resend: nav.is_admin && status == OutboxStatus::Delivered,
            nav,
            row: RowView::new(&detail.item),
            request_id: detail.item.request_id.to_string(),
            body: pretty(&detail.body),
            mapping_hash: detail.mapping_hash.clone().unwrap_or_default(),
            attempts: detail.attempts_log.iter().map(AttemptView::new).collect(),
            charged_attempts: detail.item.attempts,
            inbound: detail.inbound.as_ref().map(RecordView::new),
            masked: !reveal.is_all(),
            reveal_all_href: format!("{base}?reveal=all"),
            reveal_links: reveal_links(&base, &shown.masked_fields, &revealed),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/inbound.html")]
pub struct InboundPage {
    pub nav: Nav,
    pub record: RecordView,
    pub rows: Vec<RowView>,
    pub masked: bool,
    pub reveal_all_href: String,
    pub reveal_links: Vec<RevealLink>,
    pub can_remap: bool,
}

impl InboundPage {
    pub fn new(nav: Nav, shown: &ShownRecord, rows: &[OutboxItem], reveal: &Reveal) -> Self {
        let record = RecordView::with_fields(shown);
        let revealed = match reveal {
            Reveal::All => Vec::new(),
            Reveal::Fields(f) => f.clone(),
        };
        InboundPage {
            can_remap: nav.is_admin && shown.record.payload.is_some(),
            nav,
            rows: rows.iter().map(RowView::new).collect(),
            masked: !reveal.is_all(),
            reveal_all_href: format!("{}?reveal=all", record.href),
            reveal_links: reveal_links(&record.href, &record.masked_fields, &revealed),
            record,
        }
    }
}

/// One issue: a group of failures with one cause.
pub struct IssueView {
    pub source: String,
    pub cause: String,
    pub count: i64,
    pub retrying: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub rows_href: String,
}

impl IssueView {
    pub fn new(kind: IssueKind, issue: &Issue) -> Self {
        IssueView {
            source: issue.source.clone(),
            cause: issue.cause.clone(),
            count: issue.count,
            retrying: issue.retrying,
            first_seen: when(issue.first_seen),
            last_seen: when(issue.last_seen),
            rows_href: format!(
                "/admin/issues/rows?{}",
                query(&[
                    ("kind", kind.as_str()),
                    ("source", &issue.source),
                    ("cause", &issue.cause),
                ])
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/issues.html")]
pub struct IssuesPage {
    pub nav: Nav,
    pub dead: Vec<IssueView>,
    pub inbound: Vec<IssueView>,
    pub warnings: Vec<IssueView>,
}

#[derive(Template)]
#[template(path = "admin/issue_rows.html")]
pub struct IssueRowsPage {
    pub nav: Nav,
    pub kind: &'static str,
    pub source: String,
    pub cause: String,
    pub rows: Vec<RowView>,
    pub records: Vec<RecordView>,
    pub can_replay: bool,
}

#[derive(Template)]
#[template(path = "admin/error.html")]
pub struct ErrorPage {
    pub nav: Nav,
    pub title: &'static str,
    pub message: String,
    pub back: String,
}

#[derive(Template)]
#[template(path = "admin/erase.html")]
pub struct ErasePage {
    pub nav: Nav,
}

#[derive(Template)]
#[template(path = "admin/records.html")]
pub struct RecordsPage {
    pub nav: Nav,
    pub status: String,
    pub source: String,
    pub statuses: Vec<&'static str>,
    pub sources: Vec<String>,
    pub records: Vec<RecordView>,
    pub older: Option<String>,
    /// Records a "re-map all" would map again (with a parsed record).
    pub matching: u64,
    pub can_remap: bool,
}

impl RecordsPage {
    pub fn older_href(status: &str, source: &str, before: Option<i64>) -> Option<String> {
        let before = before?.to_string();
        Some(format!(
            "/admin/inbound?{}",
            query(&[("status", status), ("source", source), ("before", &before)])
        ))
    }
}

#[derive(Template)]
#[template(path = "admin/job.html")]
pub struct JobPage {
    pub nav: Nav,
    pub job: crate::store::jobs::Job,
    pub started: String,
    pub running: bool,
    pub errors: Vec<String>,
}

impl JobPage {
    pub fn new(nav: Nav, job: crate::store::jobs::Job) -> Self {
        JobPage {
            nav,
            started: when(job.started_at),
            running: job.state == "running",
            errors: job
                .errors
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            job,
        }
    }
}
