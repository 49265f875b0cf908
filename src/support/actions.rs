//! The support actions on outbox rows: retry, cancel, resend, replay (a filter or one
//! issue group). Each writes its audit entry; an action on one row that would change
//! nothing is refused with the reason ([`SupportError::Conflict`]), never a silent 0.

use sqlx::PgPool;

use super::{Role, SupportError};
use crate::store::OutboxStatus;
use crate::store::console;
use crate::store::support::{self as store, ReplayFilter};

/// A support action on one outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// Due now: a waiting, dead or cancelled row.
    Retry,
    /// Never sent: a waiting or dead row.
    Cancel,
    /// A delivered row goes out again under a fresh `x-request-id` (WebEngage drops a
    /// repeated id within 4 hours).
    Resend,
}

impl RowAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RowAction::Retry => "retry",
            RowAction::Cancel => "cancel",
            RowAction::Resend => "resend",
        }
    }

    /// Why this action cannot apply to a row in `status`.
    fn refusal(self, id: i64, status: OutboxStatus) -> String {
        match self {
            RowAction::Retry if status == OutboxStatus::Delivered => format!(
                "outbox row {id} is already delivered: use resend to send it again under a new x-request-id"
            ),
            RowAction::Retry => {
                format!(
                    "outbox row {id} is {status}: only waiting, dead or cancelled rows can be retried"
                )
            }
            RowAction::Cancel => {
                format!("outbox row {id} is {status}: only waiting or dead rows can be cancelled")
            }
            RowAction::Resend => {
                format!(
                    "outbox row {id} is {status}: only a delivered row can be resent (use retry)"
                )
            }
        }
    }
}

/// Carries out `action` on row `id` for `role` and writes the audit entry.
pub async fn act_on_row(
    pool: &PgPool,
    role: Role,
    action: RowAction,
    id: i64,
) -> Result<u64, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let rows = match action {
        RowAction::Retry => store::retry_now(pool, id).await?,
        RowAction::Cancel => store::cancel(pool, id).await?,
        RowAction::Resend => store::resend(pool, id).await?,
    };
    if rows == 0 {
        let status = store::outbox_status(pool, id)
            .await?
            .ok_or_else(|| SupportError::NotFound(format!("no outbox row {id}")))?;
        return Err(SupportError::Conflict(action.refusal(id, status)));
    }
    store::audit(
        pool,
        role.as_str(),
        action.as_str(),
        &format!("outbox {id}"),
        rows,
    )
    .await?;
    Ok(rows)
}

/// Makes every row matching `filter` due now; safe to repeat (a filter matching
/// nothing answers 0: it names no row whose state it could not change).
pub async fn replay(pool: &PgPool, role: Role, filter: &ReplayFilter) -> Result<u64, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let rows = store::replay(pool, filter).await?;
    let target = format!(
        "status={} source={} since={}",
        filter.status().map_or("?", OutboxStatus::as_str),
        filter.source.as_deref().unwrap_or("*"),
        filter
            .since
            .map(|t| t.to_string())
            .unwrap_or_else(|| "*".into())
    );
    store::audit(pool, role.as_str(), "replay", &target, rows).await?;
    Ok(rows)
}

/// How many rows `replay` would make due: the dry run.
pub async fn replay_count(pool: &PgPool, filter: &ReplayFilter) -> Result<u64, SupportError> {
    Ok(store::replay_count(pool, filter).await?)
}

/// Makes every dead row of one issue group (source and normalised cause) due now.
pub async fn replay_issue(
    pool: &PgPool,
    role: Role,
    source: &str,
    cause: &str,
) -> Result<u64, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let rows = console::replay_dead_group(pool, source, cause).await?;
    if rows == 0 {
        return Err(SupportError::Conflict(format!(
            "no dead row of {source} has the cause `{cause}` any more"
        )));
    }
    let target = format!("issue dead source={source} cause={cause}");
    store::audit(pool, role.as_str(), "replay", &target, rows).await?;
    Ok(rows)
}
