//! Console sessions, stored server-side: a random id in the cookie, its hash here.

use sqlx::PgPool;
use time::OffsetDateTime;

/// The random key that MACs the token of each session (made by the migration).
pub async fn key(pool: &PgPool) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query_scalar("SELECT key FROM admin_keys WHERE id = 1")
        .fetch_one(pool)
        .await
}

/// A stored session, as a request's cookie finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSession {
    pub role: String,
    pub token_mac: Vec<u8>,
    pub csrf: String,
}

/// A new session; expired ones are removed on the way, so the table stays small.
pub async fn create(
    pool: &PgPool,
    id_hash: &[u8],
    role: &str,
    token_mac: &[u8],
    csrf: &str,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO admin_sessions (id_hash, role, token_mac, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash)
    .bind(role)
    .bind(token_mac)
    .bind(csrf)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The unexpired session with this id hash.
pub async fn find(pool: &PgPool, id_hash: &[u8]) -> Result<Option<StoredSession>, sqlx::Error> {
    sqlx::query_as(
        "SELECT role, token_mac, csrf FROM admin_sessions WHERE id_hash = $1 AND expires_at > now()",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await
}

/// Ends a session (logout). Returns whether there was one.
pub async fn delete(pool: &PgPool, id_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
