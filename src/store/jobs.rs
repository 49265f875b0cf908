//! Background support jobs and their progress.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

/// One job as support staff watch it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    pub action: String,
    pub target: String,
    pub role: String,
    /// `running`, `done` or `failed`; a running job whose process died shows no progress
    /// since `updated_at`.
    pub state: String,
    pub total: i64,
    pub done: i64,
    pub remapped: i64,
    pub operations: i64,
    pub failed: i64,
    pub errors: serde_json::Value,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, action, target, role, state, total, done, remapped, operations, failed, errors, error, started_at, updated_at, finished_at";

pub async fn create(
    pool: &PgPool,
    action: &str,
    target: &str,
    role: &str,
    total: u64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO support_jobs (action, target, role, total) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(action)
    .bind(target)
    .bind(role)
    .bind(total as i64)
    .fetch_one(pool)
    .await
}

/// How far a job is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub done: u64,
    pub remapped: u64,
    pub operations: u64,
    pub failed: u64,
}

pub async fn progress(
    pool: &PgPool,
    id: i64,
    p: Progress,
    errors: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE support_jobs SET done = $2, remapped = $3, operations = $4, failed = $5, errors = $6,
                updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(p.done as i64)
    .bind(p.remapped as i64)
    .bind(p.operations as i64)
    .bind(p.failed as i64)
    .bind(serde_json::json!(errors))
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a job finished: `done`, or `failed` with why it stopped.
pub async fn finish(pool: &PgPool, id: i64, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE support_jobs SET state = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' END,
                error = $2, updated_at = now(), finished_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM support_jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}
