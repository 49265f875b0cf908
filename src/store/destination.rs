//! Whether the WebEngage destination is paused (401/404) and why; shared by every worker.

use sqlx::PgPool;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DestinationState {
    pub paused_reason: Option<String>,
    pub paused_at: Option<OffsetDateTime>,
    pub next_probe_at: Option<OffsetDateTime>,
}

pub async fn load(pool: &PgPool) -> Result<DestinationState, sqlx::Error> {
    sqlx::query_as(
        "SELECT paused_reason, paused_at, next_probe_at FROM destination_state WHERE id = 1",
    )
    .fetch_one(pool)
    .await
}
