//! What support staff read and do: find rows, see what happened, retry, cancel, replay.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::status::{InboundStatus, OutboxStatus};
use crate::webengage::OperationKind;

/// One outbox row as listed: enough to see where a lead is.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxItem {
    pub id: i64,
    pub request_id: Uuid,
    pub inbound_id: Option<i64>,
    pub source: String,
    pub rule: String,
    pub kind: OperationKind,
    pub user_id: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// Filters of the outbox list; all optional, combined with AND.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct OutboxFilter {
    pub status: Option<String>,
    pub source: Option<String>,
    pub user_id: Option<String>,
    /// Free text: an email, phone or CRM id anywhere in the stored record or payload.
    pub q: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// A page, newest first; `next` is the cursor for the following page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

pub(crate) const ITEM_COLUMNS: &str = "o.id, o.request_id, o.inbound_id, o.source, o.rule, o.kind, o.user_id, o.status, o.attempts, \
     o.next_attempt_at, o.last_error, o.created_at, o.delivered_at";

pub async fn list_outbox(
    pool: &PgPool,
    filter: &OutboxFilter,
    limit: i64,
    before: Option<i64>,
) -> Result<Page<OutboxItem>, sqlx::Error> {
    let limit = limit.clamp(1, 500);
    // A text search reads CRM records, which no index can answer without costing the
    // ingest path more than the search saves (BENCHMARKS.md, "Console search"): each
    // page reads at most SEARCH_WINDOW rows, newest first, and `next` continues below.
    let window = match filter.q {
        Some(_) => {
            let top = match before {
                Some(before) => before,
                None => max_outbox_id(pool).await? + 1,
            };
            Some(top - SEARCH_WINDOW)
        }
        None => None,
    };
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {ITEM_COLUMNS} FROM outbox o WHERE TRUE"));
    push_filter(&mut query, filter);
    if let Some(before) = before {
        query.push(" AND o.id < ").push_bind(before);
    }
    if let Some(floor) = window {
        query.push(" AND o.id >= ").push_bind(floor);
    }
    query
        .push(" ORDER BY o.id DESC LIMIT ")
        .push_bind(limit + 1);
    let mut items: Vec<OutboxItem> = query.build_query_as().fetch_all(pool).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| i.id)
    } else {
        // The window ended before the page filled: older rows are still to be read.
        window.filter(|floor| *floor > 1)
    };
    Ok(Page { items, next })
}

/// Outbox rows a text search reads per page (newest first): a page answers in well
/// under a second however large the outbox (BENCHMARKS.md, "Console search").
pub const SEARCH_WINDOW: i64 = 10_000;

async fn max_outbox_id(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let max: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM outbox")
        .fetch_one(pool)
        .await?;
    Ok(max.unwrap_or(0))
}

/// Adds `AND column = 'status'` with the status written as a literal (statuses are a
/// closed set): the status indexes are partial, and only a literal lets the planner use
/// them in a cached plan. An unknown status (`None`) matches nothing.
fn push_status(query: &mut QueryBuilder<'_, Postgres>, column: &str, status: Option<&'static str>) {
    match status {
        Some(known) => query.push(format_args!(" AND {column} = '{known}'")),
        None => query.push(" AND FALSE"),
    };
}

fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &OutboxFilter) {
    if let Some(status) = &filter.status {
        let known = OutboxStatus::parse(status).map(OutboxStatus::as_str);
        push_status(query, "o.status", known);
    }
    if let Some(source) = &filter.source {
        query.push(" AND o.source = ").push_bind(source.clone());
    }
    if let Some(user_id) = &filter.user_id {
        query.push(" AND o.user_id = ").push_bind(user_id.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND o.created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND o.created_at < ").push_bind(until);
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = like_pattern(q);
        query
            .push(" AND (o.user_id = ")
            .push_bind(q.to_owned())
            .push(" OR o.body::text ILIKE ")
            .push_bind(pattern.clone())
            // A correlated lookup by primary key per row of the window: as `EXISTS` the
            // planner hashes a scan of every stored record instead.
            .push(" OR (SELECT i.payload::text FROM inbound_records i WHERE i.id = o.inbound_id) ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

/// `%term%` for `ILIKE`, with the term's own wildcards escaped. A phone number is
/// searched by its last ten digits, so `+91 98765 43210` finds `+91-9876543210`.
pub(crate) fn like_pattern(q: &str) -> String {
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let phone_like = digits.len() >= 8
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let term = if phone_like {
        &digits[digits.len().saturating_sub(10)..]
    } else {
        q
    };
    format!(
        "%{}%",
        term.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// One row with everything known about it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxDetail {
    #[serde(flatten)]
    pub item: OutboxItem,
    pub body: Value,
    pub mapping_hash: Option<String>,
    pub attempts_log: Vec<AttemptItem>,
    pub inbound: Option<InboundItem>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptItem {
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub latency_ms: i32,
    pub response_excerpt: Option<String>,
    pub request_id: Uuid,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InboundItem {
    pub id: i64,
    pub source: String,
    pub dedupe_key: String,
    pub status: InboundStatus,
    pub payload: Option<Value>,
    pub raw_body: Option<String>,
    pub content_type: Option<String>,
    pub warnings: Value,
    pub error: Option<String>,
    pub mapping_hash: Option<String>,
    pub request_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

pub(crate) const INBOUND_COLUMNS: &str = "id, source, dedupe_key, status, payload, raw_body, content_type, warnings, error, mapping_hash, request_id, received_at";

pub async fn outbox_detail(pool: &PgPool, id: i64) -> Result<Option<OutboxDetail>, sqlx::Error> {
    let Some(item) = sqlx::query_as::<_, OutboxItem>(&format!(
        "SELECT {ITEM_COLUMNS} FROM outbox o WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let (body, mapping_hash): (Value, Option<String>) =
        sqlx::query_as("SELECT body, mapping_hash FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    let attempts_log = sqlx::query_as(
        "SELECT attempted_at, http_status, outcome, latency_ms, response_excerpt, request_id
         FROM delivery_attempts WHERE outbox_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let inbound = match item.inbound_id {
        Some(inbound_id) => inbound_detail(pool, inbound_id).await?,
        None => None,
    };
    Ok(Some(OutboxDetail {
        item,
        body,
        mapping_hash,
        attempts_log,
        inbound,
    }))
}

pub async fn inbound_detail(pool: &PgPool, id: i64) -> Result<Option<InboundItem>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {INBOUND_COLUMNS} FROM inbound_records WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct InboundFilter {
    pub status: Option<String>,
    pub source: Option<String>,
}

pub async fn list_inbound(
    pool: &PgPool,
    filter: &InboundFilter,
    limit: i64,
    before: Option<i64>,
) -> Result<Page<InboundItem>, sqlx::Error> {
    let limit = limit.clamp(1, 500);
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {INBOUND_COLUMNS} FROM inbound_records WHERE TRUE"
    ));
    push_inbound_filter(&mut query, filter);
    if let Some(before) = before {
        query.push(" AND id < ").push_bind(before);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut items: Vec<InboundItem> = query.build_query_as().fetch_all(pool).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| i.id)
    } else {
        None
    };
    Ok(Page { items, next })
}

/// Ids of stored records (with a parsed record) matching `filter`, oldest first, after
/// id `after`, at most `limit`: one page of a bulk re-map's keyset walk.
pub async fn remap_ids(
    pool: &PgPool,
    filter: &InboundFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT id FROM inbound_records WHERE payload IS NOT NULL AND id > ",
    );
    query.push_bind(after);
    push_inbound_filter(&mut query, filter);
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    query.build_query_scalar().fetch_all(pool).await
}

/// How many stored records a bulk re-map with `filter` would map again.
pub async fn remap_count(pool: &PgPool, filter: &InboundFilter) -> Result<u64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT count(*) FROM inbound_records WHERE payload IS NOT NULL",
    );
    push_inbound_filter(&mut query, filter);
    let n: i64 = query.build_query_scalar().fetch_one(pool).await?;
    Ok(n as u64)
}

fn push_inbound_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &InboundFilter) {
    if let Some(status) = &filter.status {
        let known = InboundStatus::parse(status).map(InboundStatus::as_str);
        push_status(query, "status", known);
    }
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
}

/// Makes a waiting, dead or cancelled row due now. In-flight and delivered rows are left alone.
pub async fn retry_now(pool: &PgPool, id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = now(), replayed_at = now(), head = true, updated_at = now()
         WHERE id = $1 AND status IN ('pending', 'dead', 'cancelled')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Makes sure a row is never sent. Rows already delivered or in flight are left alone.
/// The user's next row becomes its head.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<u64, sqlx::Error> {
    let cancelled: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE outbox SET status = 'cancelled', updated_at = now() WHERE id = $1 AND status IN ('pending', 'dead')
         RETURNING user_id",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(user) = cancelled else {
        return Ok(0);
    };
    super::settle::promote_heads(pool, user.as_slice()).await?;
    Ok(1)
}

/// A delivered row due again under a fresh idempotency id, made as the ingest path
/// makes them: WebEngage drops a request whose `x-request-id` it saw within 4 hours.
/// Rows in any other status are left alone (0).
pub async fn resend(pool: &PgPool, id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', request_id = $2, next_attempt_at = now(), replayed_at = now(),
                delivered_at = NULL, last_error = NULL, head = true, coalesced_into = NULL, updated_at = now()
         WHERE id = $1 AND status = 'delivered'",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The status of one row, if it exists: why an action on it changed nothing.
pub async fn outbox_status(pool: &PgPool, id: i64) -> Result<Option<OutboxStatus>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// What `replay` selects: rows of one status (default `dead`), optionally one source, since a time.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReplayFilter {
    pub status: Option<String>,
    pub source: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}

impl ReplayFilter {
    /// The status to replay: `dead` unless another is named; None when the name is no
    /// status at all.
    pub fn status(&self) -> Option<OutboxStatus> {
        match &self.status {
            Some(name) => OutboxStatus::parse(name),
            None => Some(OutboxStatus::Dead),
        }
    }
}

/// Makes every matching dead (or cancelled) row due now; safe to repeat.
pub async fn replay(pool: &PgPool, filter: &ReplayFilter) -> Result<u64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "UPDATE outbox SET status = 'pending', next_attempt_at = now(), replayed_at = now(), head = true, updated_at = now() WHERE TRUE",
    );
    push_replay_filter(&mut query, filter);
    Ok(query.build().execute(pool).await?.rows_affected())
}

/// How many rows `replay` with the same filter would make due.
pub async fn replay_count(pool: &PgPool, filter: &ReplayFilter) -> Result<u64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT count(*) FROM outbox WHERE TRUE");
    push_replay_filter(&mut query, filter);
    let n: i64 = query.build_query_scalar().fetch_one(pool).await?;
    Ok(n as u64)
}

/// Rows of the filter's status, when it is one `replay` may take (dead or cancelled).
fn push_replay_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &ReplayFilter) {
    let status = filter
        .status()
        .filter(|s| s.can_replay())
        .map(OutboxStatus::as_str);
    push_status(query, "status", status);
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
}

/// Writes one support action to the audit log.
pub async fn audit(
    pool: &PgPool,
    role: &str,
    action: &str,
    target: &str,
    rows: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO admin_audit (role, action, target, rows) VALUES ($1, $2, $3, $4)")
        .bind(role)
        .bind(action)
        .bind(target)
        .bind(rows as i64)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub role: String,
    pub action: String,
    pub target: String,
    pub rows: i64,
}

pub async fn recent_audit(pool: &PgPool, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, role, action, target, rows FROM admin_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn search_patterns_escape_wildcards_and_find_phones_by_their_digits() {
        assert_eq!(like_pattern("a_b%c\\d"), "%a\\_b\\%c\\\\d%");
        assert_eq!(like_pattern("+91 98765 43210"), "%9876543210%");
        assert_eq!(like_pattern("(020) 4567-8901"), "%2045678901%");
        assert_eq!(like_pattern("00Q5j00000Hk5WdEAJ"), "%00Q5j00000Hk5WdEAJ%");
        assert_eq!(like_pattern("12345"), "%12345%");
    }
}
