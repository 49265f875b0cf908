//! The end of personal data: the retention purge of every finished record, and the
//! erasure of one person's every trace.

use std::time::Duration;

use sqlx::PgPool;

use super::outbox::interval;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Finished outbox rows (delivered, dead, cancelled), their attempts with them.
    pub outbox: u64,
    /// Inbound records: finished ones (ignored, stale, failed, malformed) and those
    /// whose every outbox row is gone.
    pub inbound: u64,
    pub audit: u64,
}

/// Deletes every finished record older than `retention` and audit entries older than
/// `audit_retention`, `batch` rows per statement so no statement locks much at once.
///
/// Finished means nothing will happen to it unless someone acts: outbox rows delivered,
/// dead or cancelled (counted from their last change), and inbound records ignored,
/// stale, failed or malformed (counted from their arrival) or whose outbox rows are all
/// gone. Attempts go with their rows (`ON DELETE CASCADE`). Stale-version fences older
/// than the retention go too: no CRM redelivers that late.
pub async fn purge_expired(
    pool: &PgPool,
    retention: Duration,
    audit_retention: Duration,
    batch: i64,
) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    loop {
        // Every part of one statement sees the same snapshot, so the inbound check must
        // ignore the rows this very statement deletes. Data-modifying CTEs always run.
        let (outbox, inbound): (i64, i64) = sqlx::query_as(
            "WITH gone AS (
                 DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE status IN ('delivered', 'dead', 'cancelled')
                       AND COALESCE(delivered_at, updated_at) < now() - $1
                     ORDER BY id LIMIT $2)
                 RETURNING id, inbound_id),
             orphans AS (
                 DELETE FROM inbound_records i
                 WHERE i.id IN (SELECT inbound_id FROM gone WHERE inbound_id IS NOT NULL)
                   AND NOT EXISTS (
                       SELECT 1 FROM outbox o
                       WHERE o.inbound_id = i.id AND o.id NOT IN (SELECT id FROM gone))
                 RETURNING i.id)
             SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM orphans)",
        )
        .bind(interval(retention))
        .bind(batch)
        .fetch_one(pool)
        .await?;
        purged.outbox += outbox as u64;
        purged.inbound += inbound as u64;
        if outbox < batch {
            break;
        }
    }
    loop {
        let inbound: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM inbound_records WHERE id IN (
                     SELECT i.id FROM inbound_records i
                     WHERE i.received_at < now() - $1
                       AND (i.status <> 'mapped'
                            OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbound_id = i.id))
                       AND NOT EXISTS (
                           SELECT 1 FROM outbox o
                           WHERE o.inbound_id = i.id AND o.status IN ('pending', 'in_flight'))
                     ORDER BY i.id LIMIT $2)
                 RETURNING id)
             SELECT count(*) FROM gone",
        )
        .bind(interval(retention))
        .bind(batch)
        .fetch_one(pool)
        .await?;
        purged.inbound += inbound as u64;
        if inbound < batch {
            break;
        }
    }
    sqlx::query("DELETE FROM record_versions WHERE updated_at < now() - $1")
        .bind(interval(retention))
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    purged.audit = sqlx::query("DELETE FROM admin_audit WHERE at < now() - $1")
        .bind(interval(audit_retention))
        .execute(pool)
        .await?
        .rows_affected();
    Ok(purged)
}

/// Whom an erasure looks for, as a Postgres regular expression over stored text, and
/// (for a WebEngage user id) the exact user id of outbox rows.
#[derive(Debug, Clone)]
pub struct Trace {
    pub pattern: String,
    pub user_id: Option<String>,
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub inbound_records: u64,
    pub outbox_rows: u64,
    pub attempts: u64,
    pub record_versions: u64,
    pub audit_entries: u64,
}

/// Deletes, in one transaction, every stored trace matching `trace`: the inbound
/// records whose record or raw body matches, the outbox rows whose body matches or
/// whose user id is the person's, every outbox row and inbound record linked to those
/// (one person's user id finds their other rows), their delivery attempts, stale-version
/// fences whose key matches or names an erased record, and audit targets that quote it.
pub async fn erase(pool: &PgPool, trace: &Trace) -> Result<Erased, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The person's user ids: given, or found on rows whose body or record names them.
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT o.user_id FROM outbox o
         WHERE o.user_id IS NOT NULL AND (
             o.user_id = $2 OR o.user_id ~* $1 OR o.body::text ~* $1
             OR o.inbound_id IN (SELECT id FROM inbound_records
                                 WHERE payload::text ~* $1 OR raw_body ~* $1))",
    )
    .bind(&trace.pattern)
    .bind(&trace.user_id)
    .fetch_all(&mut *tx)
    .await?;
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, inbound_id FROM outbox
         WHERE user_id = ANY($2) OR body::text ~* $1
            OR inbound_id IN (SELECT id FROM inbound_records
                              WHERE payload::text ~* $1 OR raw_body ~* $1)",
    )
    .bind(&trace.pattern)
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?;
    let outbox_ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let linked: Vec<i64> = rows.iter().filter_map(|(_, i)| *i).collect();
    let attempts = sqlx::query("DELETE FROM delivery_attempts WHERE outbox_id = ANY($1)")
        .bind(&outbox_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let outbox_rows = sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&outbox_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let keys: Vec<String> = sqlx::query_scalar(
        "DELETE FROM inbound_records
         WHERE id = ANY($2) OR payload::text ~* $1 OR raw_body ~* $1 OR dedupe_key ~* $1
         RETURNING dedupe_key",
    )
    .bind(&trace.pattern)
    .bind(&linked)
    .fetch_all(&mut *tx)
    .await?;
    let record_versions = sqlx::query(
        "DELETE FROM record_versions v
         WHERE v.record_key ~* $1
            OR (length(v.record_key) >= 6 AND EXISTS (
                    SELECT 1 FROM unnest($2::text[]) AS k(key) WHERE strpos(k.key, v.record_key) > 0))",
    )
    .bind(&trace.pattern)
    .bind(&keys)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let audit_entries = sqlx::query(
        "UPDATE admin_audit SET target = regexp_replace(target, $1, '<erased>', 'gi')
         WHERE target ~* $1",
    )
    .bind(&trace.pattern)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Erased {
        inbound_records: keys.len() as u64,
        outbox_rows,
        attempts,
        record_versions,
        audit_entries,
    })
}
