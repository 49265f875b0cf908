//! What wakes the worker besides its own jobs: a NOTIFY on `outbox_ready` (rows were
//! committed), SIGHUP (re-read the key, probe now). The LISTEN connection is
//! re-established on its own timer when it is lost; meanwhile the worker polls.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

/// How often a lost LISTEN connection is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(30);

pub struct Wakeups {
    pool: PgPool,
    listener: Option<PgListener>,
    reconnect_at: Instant,
    hangup: Option<Signal>,
}

impl Wakeups {
    pub async fn new(pool: PgPool) -> Wakeups {
        let mut wakeups = Wakeups {
            pool,
            listener: None,
            reconnect_at: Instant::now(),
            hangup: signal(SignalKind::hangup()).ok(),
        };
        wakeups.reconnect_if_due().await;
        wakeups
    }

    /// Connects and LISTENs when the connection is lost and the reconnect is due.
    pub async fn reconnect_if_due(&mut self) {
        if self.listener.is_some() || Instant::now() < self.reconnect_at {
            return;
        }
        self.reconnect_at = Instant::now() + RECONNECT_EVERY;
        let connected = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen("outbox_ready").await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => self.listener = Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN outbox_ready failed; polling until it works")
            }
        }
    }

    /// The next NOTIFY (only `on_notify`; never without a connection) or SIGHUP.
    pub async fn next(&mut self, on_notify: bool) -> Wake {
        let Wakeups {
            listener, hangup, ..
        } = self;
        let notified = async {
            match listener.as_mut() {
                Some(l) if on_notify => l.recv().await.map(|_| ()),
                _ => std::future::pending().await,
            }
        };
        let hung_up = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            heard = notified => {
                if let Err(e) = heard {
                    tracing::warn!(error = %e, "lost the LISTEN connection; polling until it is back");
                    *listener = None;
                }
                Wake::Notified
            }
            Some(()) = hung_up => Wake::HangUp,
        }
    }
}

/// What woke the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Notified,
    HangUp,
}
