//! Bulk actions as background jobs: started by the console or the API, they run in the
//! serving process and write their progress to `support_jobs`, where the console's job
//! page and `GET /admin/api/jobs/{id}` read it. The audit entry is written when the job
//! starts (with the dry-run count) and its result is on the job.

use std::sync::Arc;

use sqlx::PgPool;

use super::remap::{self, RemapSelection, RemapSummary};
use super::{Role, SupportError};
use crate::ingest::TypeGuard;
use crate::mapping::MappingSet;
use crate::store::jobs::{self, Progress};
use crate::store::support as store;

pub use crate::store::jobs::Job;

/// Starts re-mapping every record of `selection` in the background; returns the job.
/// Refused (409) when nothing matches: a job that would change nothing.
pub async fn start_remap(
    pool: &PgPool,
    types: Arc<TypeGuard>,
    mappings: Arc<MappingSet>,
    selection: RemapSelection,
    role: Role,
) -> Result<Job, SupportError> {
    if !role.may_act() {
        return Err(SupportError::ReadOnly);
    }
    let total = selection.count(pool).await?;
    if total == 0 {
        return Err(SupportError::Conflict(format!(
            "no stored record to re-map matches {}",
            selection.target()
        )));
    }
    let target = selection.target();
    let id = jobs::create(pool, "remap", &target, role.as_str(), total).await?;
    store::audit(
        pool,
        role.as_str(),
        "remap",
        &format!("job {id}: {target}"),
        total,
    )
    .await?;
    let job = jobs::get(pool, id)
        .await?
        .ok_or_else(|| SupportError::NotFound(format!("no job {id}")))?;
    let pool = pool.clone();
    tokio::spawn(async move {
        let progress = |s: RemapSummary| {
            let pool = pool.clone();
            async move {
                if let Err(e) = jobs::progress(&pool, id, progress_of(&s), &s.errors).await {
                    tracing::warn!(job = id, error = %e, "cannot record a job's progress");
                }
            }
        };
        let result = remap::remap_selection(&pool, &types, &mappings, &selection, progress).await;
        let error = result
            .err()
            .map(|e| format!("stopped: the database failed: {e}"));
        if let Some(error) = &error {
            tracing::warn!(job = id, %error, "a re-map job stopped");
        }
        if let Err(e) = jobs::finish(&pool, id, error.as_deref()).await {
            tracing::warn!(job = id, error = %e, "cannot record the end of a job");
        }
    });
    Ok(job)
}

fn progress_of(s: &RemapSummary) -> Progress {
    Progress {
        done: s.done(),
        remapped: s.remapped,
        operations: s.operations,
        failed: s.failed,
    }
}

/// One job, for the console and the API.
pub async fn job(pool: &PgPool, id: i64) -> Result<Job, SupportError> {
    jobs::get(pool, id)
        .await?
        .ok_or_else(|| SupportError::NotFound(format!("no job {id}")))
}
