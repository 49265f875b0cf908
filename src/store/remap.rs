//! Re-mapping a stored CRM record through today's mappings: what it produced before
//! is replaced by what it produces now, in one transaction.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::columns::{OperationColumns, warnings_json};
use super::outbox::{INSERT_COLUMNS, head_of_new_row};
use super::settle::promote_heads;
use super::status::InboundStatus;
use super::storable;
use crate::mapping::MappedRecord;
use crate::webengage::Operation;

/// New outbox rows for one inbound record, in the order given (a re-map).
async fn insert_outbox(
    conn: &mut PgConnection,
    inbound_id: i64,
    source: &str,
    mapping_hash: &str,
    operations: &[Operation],
) -> Result<(), sqlx::Error> {
    if operations.is_empty() {
        return Ok(());
    }
    let ops = OperationColumns::of(operations.iter());
    let head = head_of_new_row("u", "row_number() OVER (PARTITION BY u ORDER BY ord) = 1");
    let sql = format!(
        "INSERT INTO outbox ({INSERT_COLUMNS})
         SELECT r, $2, $3, ru, k, u, b, $4, {head}, NULL
         FROM UNNEST($1::uuid[], $5::text[], $6::operation_kind[], $7::text[], $8::text[]::json[])
              WITH ORDINALITY AS t(r, ru, k, u, b, ord)
         ORDER BY ord"
    );
    sqlx::query(&sql)
        .bind(&ops.request_ids)
        .bind(inbound_id)
        .bind(source)
        .bind(mapping_hash)
        .bind(&ops.rules)
        .bind(&ops.kinds)
        .bind(&ops.users)
        .bind(&ops.bodies)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Replaces what an inbound record produced with what today's mapping produces:
/// rows not yet delivered are cancelled (superseded), new rows are added except those
/// identical to one already delivered, and the record's status is updated. One transaction.
pub async fn replace_operations(
    pool: &PgPool,
    inbound_id: i64,
    source: &str,
    mapping_hash: &str,
    mapped: &MappedRecord,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cancelled: Vec<Option<String>> = sqlx::query_scalar(
        "UPDATE outbox SET status = 'cancelled', last_error = 'superseded by a re-map', updated_at = now()
         WHERE inbound_id = $1 AND status IN ('pending', 'dead')
         RETURNING user_id",
    )
    .bind(inbound_id)
    .fetch_all(&mut *tx)
    .await?;
    let users: Vec<String> = cancelled.into_iter().flatten().collect();
    promote_heads(&mut *tx, &users).await?;
    let delivered: Vec<(String, Value)> =
        sqlx::query_as("SELECT rule, body FROM outbox WHERE inbound_id = $1 AND status IN ('delivered', 'in_flight')")
            .bind(inbound_id)
            .fetch_all(&mut *tx)
            .await?;
    let fresh: Vec<Operation> = mapped
        .operations
        .iter()
        .filter(|op| {
            !delivered
                .iter()
                .any(|(rule, body)| *rule == op.rule && *body == op.body)
        })
        .cloned()
        .collect();
    insert_outbox(&mut tx, inbound_id, source, mapping_hash, &fresh).await?;
    sqlx::query("UPDATE inbound_records SET status = $2, warnings = $3::text::jsonb, error = $4, mapping_hash = $5 WHERE id = $1")
        .bind(inbound_id)
        .bind(InboundStatus::from(mapped.status))
        .bind(warnings_json(&mapped.warnings))
        .bind(mapped.error().map(|e| storable::text(&e).into_owned()))
        .bind(mapping_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(fresh.len() as u64)
}
