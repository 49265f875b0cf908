//! Whether the database has been prepared (created when missing, migrated).
//!
//! `serve` does not exit when Postgres is down at start: an orchestrator restarting a
//! crash-looping process helps nobody, and a service that is up can at least say why it
//! is not ready (`/readyz`) and, with a spool, keep accepting. So preparing the database
//! is retried in the background until it works; the worker waits for it.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// First and longest pause between attempts to prepare the database.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Shared by the HTTP side (`/readyz`) and the tasks that wait for the database.
pub struct Readiness {
    prepared: watch::Sender<bool>,
    last_error: Mutex<Option<String>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            prepared: watch::Sender::new(false),
            last_error: Mutex::new(None),
        }
    }
}

impl Readiness {
    pub fn is_prepared(&self) -> bool {
        *self.prepared.borrow()
    }

    /// Why the last attempt to prepare the database failed, while it has not worked yet.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("readiness lock").clone()
    }

    /// Waits until the database is prepared; false when `shutdown` came first.
    pub async fn wait(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.prepared.subscribe();
        tokio::select! {
            ready = rx.wait_for(|p| *p) => ready.is_ok(),
            _ = shutdown.cancelled() => false,
        }
    }

    /// One attempt: create the database when missing, apply the migrations.
    pub async fn try_prepare(&self, pool: &PgPool) -> Result<(), super::ConnectError> {
        let result = super::prepare(pool).await;
        match &result {
            Ok(()) => {
                *self.last_error.lock().expect("readiness lock") = None;
                self.prepared.send_replace(true);
            }
            Err(e) => *self.last_error.lock().expect("readiness lock") = Some(e.to_string()),
        }
        result
    }

    /// Retries `try_prepare` with a capped backoff, logging every failure, until it
    /// works or `shutdown` is cancelled.
    pub async fn prepare_until_ready(&self, pool: &PgPool, shutdown: &CancellationToken) {
        let mut pause = RETRY_FIRST;
        while !self.is_prepared() && !shutdown.is_cancelled() {
            match self.try_prepare(pool).await {
                Ok(()) => tracing::info!("database prepared (created when missing, migrated)"),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "Postgres is not usable yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Whether Postgres answers now: on an idle pooled connection when there is one (cheap,
/// and a broken one fails at once), else on a new connection, so the error is the real
/// cause (refused, reset, authentication) rather than the pool's timeout.
pub async fn check(pool: &PgPool) -> Result<(), super::ConnectError> {
    let options = pool.connect_options();
    let failed = |e| super::connect_error(&options, e);
    if let Some(mut conn) = pool.try_acquire() {
        return sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(failed);
    }
    use sqlx::{ConnectOptions, Connection};
    let mut conn = options.connect().await.map_err(failed)?;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    let _ = conn.close().await;
    Ok(())
}
