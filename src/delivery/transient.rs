//! Writing down WebEngage's answer through a Postgres blink.
//!
//! Once WebEngage has answered, the row must be settled (and the attempt recorded). If
//! Postgres is briefly unreachable at that moment (a restart, a failover, a dropped
//! connection) and the settle simply failed, the row would stay `in_flight` until its
//! lease expires (90 s) and then be sent again: late, and a likely duplicate. So the
//! settles of one call are retried on transient errors, for a bounded time
//! (`SETTLE_RETRY_FOR`), and given up on after that: the lease then takes over, as before.
//!
//! Every settle stays guarded by the row's lease token, so a retry can never overwrite a
//! row that another worker owns by now. A retry after an error that cut a statement off
//! mid-flight may find that the first try did commit: the settle then matches no row and
//! logs "lease lost", and the attempt may be recorded twice; the row is still settled once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long the settles of one WebEngage call keep retrying transient database errors:
/// enough for the pool to reconnect after a restart or a failover, far below the lease
/// (90 s), which the worker's heartbeat keeps renewing meanwhile.
pub const SETTLE_RETRY_FOR: Duration = Duration::from_secs(15);
/// The first pause between tries; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Until when the settles of a call that has just been answered may retry. One deadline
/// covers all of them (the attempt record, then each row), so a long outage costs one
/// `SETTLE_RETRY_FOR` per call, not one per statement.
pub fn settle_deadline() -> Instant {
    Instant::now() + SETTLE_RETRY_FOR
}

/// Runs `op` (a settle or an attempt record), and again after a short, growing pause
/// while it fails with a transient database error and `until` is not reached. The
/// first try always runs. Returns the last error when giving up.
pub async fn retry_transient<T, F, Fut>(
    until: Instant,
    what: &'static str,
    mut op: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 1u32;
    loop {
        match op().await {
            Ok(done) => {
                if tries > 1 {
                    tracing::info!(tries, "{what}: done once the database answered again");
                }
                return Ok(done);
            }
            Err(e) if is_transient(&e) && Instant::now() + pause < until => {
                tracing::warn!(error = %e, tries, retry_in = ?pause, "{what}: database unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Errors that say "the database was not reachable just now", after which the same
/// statement may well succeed. Anything else (a constraint, a bad query, a closed pool)
/// would fail again, and is returned at once.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        // Refused, reset, closed in the middle of a statement: the server or the
        // network blinked.
        sqlx::Error::Io(_) => true,
        // No connection within the pool's acquire timeout: Postgres not back yet.
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception. 57P01..03: the server is shutting down,
            // crashed, or is starting up. 40001/40P01: the statement was rolled back
            // whole (serialization failure, deadlock) and may simply be run again.
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }),
        // A proxy or pooler in front of a Postgres that is away accepts the connection
        // and closes it at once. sqlx 0.8 reads that end of stream during the TLS
        // negotiation (`sslmode=prefer`, the default) as a 0x00 answer, a protocol
        // error, instead of an I/O error. A real server never answers 0x00.
        sqlx::Error::Protocol(message) => message.contains("response from SSLRequest: 0x00"),
        // `PoolClosed` means the process is shutting down on purpose: waiting cannot
        // help, and shutdown hands unfinished rows back itself.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn reset() -> sqlx::Error {
        sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset))
    }

    #[test]
    fn a_blink_is_transient_a_mistake_or_a_closed_pool_is_not() {
        assert!(is_transient(&reset()));
        assert!(is_transient(&sqlx::Error::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused
        ))));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::PoolClosed));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(is_transient(&sqlx::Error::Protocol(
            "unexpected response from SSLRequest: 0x00".into()
        )));
        assert!(!is_transient(&sqlx::Error::Protocol("garbage".into())));
    }

    #[tokio::test]
    async fn retries_a_transient_error_until_it_clears() {
        let calls = AtomicU32::new(0);
        let done = retry_transient(settle_deadline(), "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(reset()),
                _ => Ok("settled"),
            }
        })
        .await;
        assert_eq!(done.unwrap(), "settled");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_and_a_passed_deadline_are_not_retried() {
        let calls = AtomicU32::new(0);
        let done: Result<(), _> = retry_transient(settle_deadline(), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::RowNotFound)
        })
        .await;
        assert!(matches!(done, Err(sqlx::Error::RowNotFound)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let done: Result<(), _> = retry_transient(Instant::now(), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(reset())
        })
        .await;
        assert!(matches!(done, Err(sqlx::Error::Io(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the first try always runs");
    }
}
