//! Imports as support sees them (CLI, admin API, console): list, one import with its
//! outbox rows by status, and cancelling one (its undelivered rows), audited.

use serde::Serialize;
use sqlx::PgPool;

use super::{Role, SupportError};
use crate::store::imports::{self as store, ImportOutbox, ImportRow};
use crate::store::support::audit;

/// Imports shown at most by a list.
pub const LIST_LIMIT: i64 = 100;

/// One import and where its outbox rows are.
#[derive(Debug, Clone, Serialize)]
pub struct ImportDetail {
    #[serde(flatten)]
    pub import: ImportRow,
    pub outbox: ImportOutbox,
}

pub async fn list(pool: &PgPool) -> Result<Vec<ImportRow>, SupportError> {
    Ok(store::list(pool, LIST_LIMIT).await?)
}

pub async fn show(pool: &PgPool, id: i64) -> Result<ImportDetail, SupportError> {
    let import = store::get(pool, id)
        .await?
        .ok_or_else(|| SupportError::NotFound(format!("no import {id}")))?;
    let outbox = store::outbox_counts(pool, id).await?;
    Ok(ImportDetail { import, outbox })
}

/// Stops import `id` and cancels its undelivered rows; the rows cancelled. Rows in
/// flight finish; delivered rows stay delivered.
pub async fn cancel(pool: &PgPool, role: Role, id: i64) -> Result<u64, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let rows = store::cancel(pool, id)
        .await?
        .ok_or_else(|| SupportError::NotFound(format!("no import {id}")))?;
    audit(pool, role.as_str(), "cancel", &format!("import {id}"), rows).await?;
    Ok(rows)
}
