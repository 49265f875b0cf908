//! What `/readyz` and `/metrics` know about Postgres. Each reading is taken by a
//! background task, one at a time; a request waits for a fresh one at most `BUDGET`
//! and otherwise answers with what it has, so both routes answer within half a second
//! whatever Postgres is doing (down, refusing, or hanging without an answer).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::store;
use crate::store::destination::DestinationState;
use crate::store::stats::OutboxStats;

/// The longest a request waits for a reading in progress.
pub const BUDGET: Duration = Duration::from_millis(250);
/// A reading younger than this is used as it is.
const FRESH_FOR: Duration = Duration::from_millis(100);
/// A check that has not answered for this long means Postgres is not answering.
const STALLED_AFTER: Duration = Duration::from_secs(2);
/// The longest one reading may take before it is abandoned. A health check gets no
/// longer than a check is allowed to stall, so a check caught by an outage (a query on a
/// connection that went away) is over, and the next one can see Postgres back, within
/// seconds of its return; the counts may take longer on a large outbox.
const HEALTH_TIMEOUT: Duration = STALLED_AFTER;
const READING_TIMEOUT: Duration = Duration::from_secs(10);

/// One reading of the database's health: it answers, and the destination's state.
#[derive(Debug, Clone)]
pub struct Health {
    pub database: Result<(), String>,
    pub destination: Option<DestinationState>,
}

/// The readings of one process, shared by its HTTP workers.
pub struct DatabaseProbe {
    pool: PgPool,
    health: Arc<Reading<Health>>,
    stats: Arc<Reading<Result<OutboxStats, String>>>,
}

/// What a request gets: the latest finished reading (if any) and how long one has been
/// running without an answer.
pub struct Seen<T> {
    pub last: Option<T>,
    pub waiting_for: Option<Duration>,
}

impl DatabaseProbe {
    pub fn new(pool: PgPool) -> DatabaseProbe {
        DatabaseProbe {
            pool,
            health: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Whether Postgres answers (and the destination's state), within `BUDGET`.
    pub async fn health(&self) -> Health {
        let pool = self.pool.clone();
        let seen = self
            .health
            .read(async move {
                let database =
                    match tokio::time::timeout(HEALTH_TIMEOUT, store::ready::check(&pool)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
                    };
                let destination = match database {
                    Ok(()) => tokio::time::timeout(HEALTH_TIMEOUT, store::destination::load(&pool))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Err(_) => None,
                };
                Health {
                    database,
                    destination,
                }
            })
            .await;
        match (seen.last, seen.waiting_for) {
            (_, Some(waiting)) if waiting >= STALLED_AFTER => Health {
                database: Err(format!("no answer for {} ms", waiting.as_millis())),
                destination: None,
            },
            (Some(last), _) => last,
            (None, _) => Health {
                database: Err(format!("no answer within {} ms", BUDGET.as_millis())),
                destination: None,
            },
        }
    }

    /// The outbox and inbound counts, within `BUDGET`: the latest ones read, which may
    /// be older than this request when Postgres is slow; None before the first.
    pub async fn stats(&self) -> Option<OutboxStats> {
        let pool = self.pool.clone();
        let seen = self
            .stats
            .read(async move {
                match tokio::time::timeout(READING_TIMEOUT, store::stats::outbox_stats(&pool)).await
                {
                    Ok(Ok(stats)) => Ok(stats),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                }
            })
            .await;
        seen.last.and_then(Result::ok)
    }
}

/// A value read in the background, one reading at a time.
struct Reading<T> {
    state: Mutex<State<T>>,
    done: Notify,
}

struct State<T> {
    last: Option<(Instant, T)>,
    running_since: Option<Instant>,
}

impl<T> Default for Reading<T> {
    fn default() -> Self {
        Reading {
            state: Mutex::new(State {
                last: None,
                running_since: None,
            }),
            done: Notify::new(),
        }
    }
}

impl<T: Clone + Send + 'static> Reading<T> {
    /// The latest value, after starting `take` (unless a reading is running or the
    /// last is fresh) and waiting for it at most `BUDGET`.
    async fn read<F>(self: &Arc<Self>, take: F) -> Seen<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let done = {
            let mut state = self.state.lock().expect("probe lock");
            if let Some((at, value)) = &state.last
                && at.elapsed() < FRESH_FOR
            {
                return Seen {
                    last: Some(value.clone()),
                    waiting_for: None,
                };
            }
            // Registered before the reading can finish, so its notice is not missed.
            let done = self.done.notified();
            if state
                .running_since
                .is_none_or(|since| since.elapsed() > READING_TIMEOUT * 2)
            {
                state.running_since = Some(Instant::now());
                let me = self.clone();
                tokio::spawn(async move {
                    let value = take.await;
                    {
                        let mut state = me.state.lock().expect("probe lock");
                        state.last = Some((Instant::now(), value));
                        state.running_since = None;
                    }
                    me.done.notify_waiters();
                });
            }
            done
        };
        let _ = tokio::time::timeout(BUDGET, done).await;
        let state = self.state.lock().expect("probe lock");
        Seen {
            last: state.last.as_ref().map(|(_, v)| v.clone()),
            waiting_for: state.running_since.map(|since| since.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reading_that_hangs_is_waited_for_at_most_the_budget() {
        let reading: Arc<Reading<u32>> = Arc::default();
        let started = Instant::now();
        let seen = reading.read(std::future::pending()).await;
        assert!(started.elapsed() < BUDGET + Duration::from_millis(200));
        assert!(seen.last.is_none());
        assert!(seen.waiting_for.is_some());
        // A second request does not start a second reading; it waits on the first.
        let seen = reading.read(async { 7 }).await;
        assert!(
            seen.last.is_none(),
            "a second reading ran beside the hung one"
        );
    }

    #[tokio::test]
    async fn a_quick_reading_is_returned_at_once() {
        let reading: Arc<Reading<u32>> = Arc::default();
        let started = Instant::now();
        let seen = reading.read(async { 7 }).await;
        assert_eq!(seen.last, Some(7));
        assert_eq!(seen.waiting_for, None);
        assert!(started.elapsed() < BUDGET, "waited the whole budget");
    }
}
