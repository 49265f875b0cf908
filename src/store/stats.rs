//! Counts for `/metrics`, `/admin/api/stats` and `outbox stats`.

use serde::Serialize;
use sqlx::PgPool;

use super::backlog::{self, Backlog, Queued};
use super::status::{InboundStatus, OutboxStatus};
use crate::webengage::OperationKind;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxStats {
    /// Rows per status (`pending`, `in_flight`, `delivered`, `dead`, `cancelled`); absent = 0.
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Seconds since the oldest pending row was created; 0 when none waits.
    pub oldest_pending_age_seconds: f64,
    /// Inbound records per status (`mapped`, `ignored`, `stale`, `failed`, `malformed`).
    pub inbound_by_status: std::collections::BTreeMap<String, i64>,
    /// Queued rows per kind, the delivery rate, the time to drain.
    pub backlog: Backlog,
}

impl OutboxStats {
    /// Rows in `status` (0 when none).
    pub fn count(&self, status: OutboxStatus) -> i64 {
        self.by_status.get(status.as_str()).copied().unwrap_or(0)
    }
}

pub async fn outbox_stats(pool: &PgPool) -> Result<OutboxStats, sqlx::Error> {
    let rows: Vec<(OutboxStatus, OperationKind, i64)> =
        sqlx::query_as("SELECT status, kind, count(*) FROM outbox GROUP BY status, kind")
            .fetch_all(pool)
            .await?;
    let mut by_status = std::collections::BTreeMap::new();
    let mut queued = Queued::default();
    for (status, kind, n) in rows {
        *by_status.entry(status.as_str().to_owned()).or_insert(0) += n;
        if matches!(status, OutboxStatus::Pending | OutboxStatus::InFlight) {
            *match kind {
                OperationKind::User => &mut queued.users,
                OperationKind::Event => &mut queued.events,
                OperationKind::Transaction => &mut queued.transactions,
            } += n;
        }
    }
    let inbound: Vec<(InboundStatus, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM inbound_records GROUP BY status")
            .fetch_all(pool)
            .await?;
    let age: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM outbox WHERE status IN ('pending', 'in_flight')",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxStats {
        by_status,
        backlog: backlog::summary(pool, queued).await?,
        oldest_pending_age_seconds: age.unwrap_or(0.0).max(0.0),
        inbound_by_status: inbound
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
    })
}
