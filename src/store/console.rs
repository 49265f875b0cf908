//! What the support console shows beyond the API: the last hour, failures grouped into
//! issues by cause, the rows of one issue, and replaying one issue's dead rows.
//!
//! Causes are normalised in SQL, not in Rust, so that the grouping and the replay of a
//! group select exactly the same rows.

use serde::Serialize;
use sqlx::PgPool;
use std::time::Duration;

use time::OffsetDateTime;

use super::stats::{self, OutboxStats};
use super::support::{self, AuditEntry, InboundItem, OutboxItem};

/// An error text with what differs per row taken out: values quoted from the CRM
/// record (`"Rohan" is not a number`: a name must not reach the issues view, and one
/// cause is one line), emails, UUIDs, CRM ids (long tokens with a digit) and numbers of
/// four digits or more. HTTP statuses stay.
fn normalised(column: &str) -> String {
    format!(
        r#"regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(COALESCE({column}, ''),
            '"([^"\\]|\\.)*"', '…', 'g'),
            '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+', '<email>', 'g'),
            '[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}', '<id>', 'g'),
            '\m(?=[A-Za-z]*[0-9])[A-Za-z0-9]{{15,18}}\M', '<id>', 'g'),
            '[0-9]{{4,}}', 'N', 'g')"#
    )
}

/// A warning with its value taken out: warnings quote the offending value as JSON
/// (`"not a phone" is not a phone number`), which differs per record.
fn normalised_warning(column: &str) -> String {
    let without_values = format!(
        r#"regexp_replace(regexp_replace({column}, '"([^"\\]|\\.)*"', '…', 'g'), '\m-?[0-9][0-9.eE+-]*\M', '…', 'g')"#
    );
    normalised(&without_values)
}

/// Deliveries of the last hour.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastHour {
    pub delivered: i64,
    pub dead: i64,
    /// Attempts by outcome (`delivered`, `retry`, `dead`, `paused`, ...), most first.
    pub attempts: Vec<(String, i64)>,
}

pub async fn last_hour(pool: &PgPool) -> Result<LastHour, sqlx::Error> {
    let (delivered, dead): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'delivered' AND delivered_at > now() - interval '1 hour'),
                count(*) FILTER (WHERE status = 'dead' AND updated_at > now() - interval '1 hour')
         FROM outbox WHERE updated_at > now() - interval '1 hour'",
    )
    .fetch_one(pool)
    .await?;
    let attempts = sqlx::query_as(
        "SELECT outcome, count(*) FROM delivery_attempts
         WHERE attempted_at > now() - interval '1 hour' GROUP BY outcome ORDER BY count(*) DESC, outcome",
    )
    .fetch_all(pool)
    .await?;
    Ok(LastHour {
        delivered,
        dead,
        attempts,
    })
}

/// Everything the dashboard shows from the database.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub stats: OutboxStats,
    pub last_hour: LastHour,
    pub audit: Vec<AuditEntry>,
    /// The sampled minutes of the last `history` span, oldest first (the chart).
    pub minutes: Vec<super::backlog::Minute>,
}

pub async fn dashboard(pool: &PgPool, history: Duration) -> Result<Dashboard, sqlx::Error> {
    Ok(Dashboard {
        stats: stats::outbox_stats(pool).await?,
        last_hour: last_hour(pool).await?,
        audit: support::recent_audit(pool, 15).await?,
        minutes: super::backlog::history(pool, history).await?,
    })
}

/// The three kinds of issue a lead can be stuck in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    /// Outbox rows WebEngage refused or that ran out of retries.
    Dead,
    /// Inbound records that failed mapping or could not be parsed.
    Inbound,
    /// Inbound records whose mapping dropped a field.
    Warning,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Dead => "dead",
            IssueKind::Inbound => "inbound",
            IssueKind::Warning => "warning",
        }
    }
}

/// One group of failures sharing a source and a cause.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Issue {
    pub source: String,
    pub cause: String,
    pub count: i64,
    /// Rows of the group replayed and not yet delivered or dead again.
    pub retrying: i64,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Issues {
    pub dead: Vec<Issue>,
    pub inbound: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

pub async fn issues(pool: &PgPool) -> Result<Issues, sqlx::Error> {
    // Replayed rows on their way again stay in their group ("being retried") until
    // they are delivered or dead again, so a replayed issue does not vanish meanwhile.
    let dead = sqlx::query_as(&format!(
        "SELECT source, {cause} AS cause, count(*) FILTER (WHERE status = 'dead') AS count,
                count(*) FILTER (WHERE status <> 'dead') AS retrying,
                min(updated_at) AS first_seen, max(updated_at) AS last_seen
         FROM outbox
         WHERE status = 'dead'
            OR (status IN ('pending', 'in_flight') AND replayed_at IS NOT NULL AND last_error IS NOT NULL)
         GROUP BY 1, 2 ORDER BY count DESC, last_seen DESC LIMIT 200",
        cause = normalised("last_error")
    ))
    .fetch_all(pool)
    .await?;
    // The status leads the cause: "malformed: ..." and "failed: ..." need different fixes.
    let inbound = sqlx::query_as(&format!(
        "SELECT source, status || ': ' || {cause} AS cause, count(*) AS count, 0::int8 AS retrying,
                min(received_at) AS first_seen, max(received_at) AS last_seen
         FROM inbound_records WHERE status IN ('failed', 'malformed') GROUP BY 1, 2
         ORDER BY count DESC, last_seen DESC LIMIT 200",
        cause = normalised("error")
    ))
    .fetch_all(pool)
    .await?;
    let warnings = sqlx::query_as(&format!(
        "SELECT i.source, {cause} AS cause, count(DISTINCT i.id) AS count, 0::int8 AS retrying,
                min(i.received_at) AS first_seen, max(i.received_at) AS last_seen
         FROM inbound_records i, jsonb_array_elements_text(i.warnings) AS w(text)
         GROUP BY 1, 2 ORDER BY count DESC, last_seen DESC LIMIT 200",
        cause = normalised_warning("w.text")
    ))
    .fetch_all(pool)
    .await?;
    Ok(Issues {
        dead,
        inbound,
        warnings,
    })
}

/// The rows of one issue, newest first: outbox rows for `dead`, inbound records otherwise.
#[derive(Debug, Clone, Serialize)]
pub enum IssueRows {
    Outbox(Vec<OutboxItem>),
    Inbound(Vec<InboundItem>),
}

pub async fn issue_rows(
    pool: &PgPool,
    kind: IssueKind,
    source: &str,
    cause: &str,
    limit: i64,
) -> Result<IssueRows, sqlx::Error> {
    let limit = limit.clamp(1, 500);
    let rows = match kind {
        IssueKind::Dead => IssueRows::Outbox(
            sqlx::query_as(&format!(
                "SELECT {columns} FROM outbox o WHERE o.status = 'dead' AND o.source = $1 AND {cause} = $2
                 ORDER BY o.id DESC LIMIT $3",
                columns = support::ITEM_COLUMNS,
                cause = normalised("o.last_error")
            ))
            .bind(source)
            .bind(cause)
            .bind(limit)
            .fetch_all(pool)
            .await?,
        ),
        IssueKind::Inbound => IssueRows::Inbound(
            sqlx::query_as(&format!(
                "SELECT {columns} FROM inbound_records WHERE status IN ('failed', 'malformed')
                 AND source = $1 AND status || ': ' || {cause} = $2 ORDER BY id DESC LIMIT $3",
                columns = support::INBOUND_COLUMNS,
                cause = normalised("error")
            ))
            .bind(source)
            .bind(cause)
            .bind(limit)
            .fetch_all(pool)
            .await?,
        ),
        IssueKind::Warning => IssueRows::Inbound(
            sqlx::query_as(&format!(
                "SELECT {columns} FROM inbound_records WHERE source = $1 AND EXISTS (
                    SELECT 1 FROM jsonb_array_elements_text(warnings) AS w(text) WHERE {cause} = $2)
                 ORDER BY id DESC LIMIT $3",
                columns = support::INBOUND_COLUMNS,
                cause = normalised_warning("w.text")
            ))
            .bind(source)
            .bind(cause)
            .bind(limit)
            .fetch_all(pool)
            .await?,
        ),
    };
    Ok(rows)
}

/// Ids of the re-mappable records (with a parsed record) of one failed-record issue
/// group, oldest first, after id `after`, at most `limit`: one page of a keyset walk.
pub async fn issue_record_ids(
    pool: &PgPool,
    source: &str,
    cause: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM inbound_records WHERE status IN ('failed', 'malformed') AND payload IS NOT NULL
         AND source = $1 AND status || ': ' || {cause} = $2 AND id > $3 ORDER BY id LIMIT $4",
        cause = normalised("error")
    ))
    .bind(source)
    .bind(cause)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many re-mappable records one failed-record issue group holds.
pub async fn issue_record_count(
    pool: &PgPool,
    source: &str,
    cause: &str,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM inbound_records WHERE status IN ('failed', 'malformed') AND payload IS NOT NULL
         AND source = $1 AND status || ': ' || {cause} = $2",
        cause = normalised("error")
    ))
    .bind(source)
    .bind(cause)
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}

/// Makes every dead row of one (source, cause) group due now; safe to repeat.
pub async fn replay_dead_group(
    pool: &PgPool,
    source: &str,
    cause: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE outbox o SET status = 'pending', next_attempt_at = now(), replayed_at = now(), head = true, updated_at = now()
         WHERE o.status = 'dead' AND o.source = $1 AND {cause} = $2",
        cause = normalised("o.last_error")
    ))
    .bind(source)
    .bind(cause)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Inbound records matching a search that produced nothing to deliver (failed, ignored,
/// stale, malformed), among the newest: the answer to "why is this lead not in the
/// outbox at all?".
pub async fn undelivered_records(
    pool: &PgPool,
    q: &str,
    limit: i64,
) -> Result<Vec<InboundItem>, sqlx::Error> {
    let pattern = support::like_pattern(q);
    // The newest records only, like the outbox search's first page: bounded whatever
    // the size of the store.
    sqlx::query_as(&format!(
        "SELECT {columns} FROM inbound_records
         WHERE id > (SELECT COALESCE(max(id), 0) FROM inbound_records) - {window}
           AND status <> 'mapped' AND (payload::text ILIKE $1 OR raw_body ILIKE $1)
         ORDER BY id DESC LIMIT $2",
        window = support::SEARCH_WINDOW / 2,
        columns = support::INBOUND_COLUMNS
    ))
    .bind(pattern)
    .bind(limit.clamp(1, 200))
    .fetch_all(pool)
    .await
}

/// One inbound record and the outbox rows it produced (newest first).
pub async fn record_with_rows(
    pool: &PgPool,
    inbound_id: i64,
) -> Result<Option<(InboundItem, Vec<OutboxItem>)>, sqlx::Error> {
    let Some(record) = support::inbound_detail(pool, inbound_id).await? else {
        return Ok(None);
    };
    let rows = sqlx::query_as(&format!(
        "SELECT {columns} FROM outbox o WHERE o.inbound_id = $1 ORDER BY o.id DESC LIMIT 100",
        columns = support::ITEM_COLUMNS
    ))
    .bind(inbound_id)
    .fetch_all(pool)
    .await?;
    Ok(Some((record, rows)))
}
