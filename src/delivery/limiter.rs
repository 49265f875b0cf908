//! Client-side rate limiting per WebEngage endpoint, at the configured quotas.
//!
//! Three layers, because the quota belongs to the WebEngage account:
//! - a quota shared by every worker process through Postgres (`store::rate_windows`):
//!   permits are taken a few at a time, and when a window is spent every process waits
//!   for the next one;
//! - a token bucket per process, which only smooths a backlog's start;
//! - WebEngage's own answers: `X-RateLimit-Remaining` below a tenth of the limit spaces
//!   the calls over what is left of the window (other systems spend the same quota), and
//!   a 429 or `Remaining: 0` closes the endpoint until the next window (or for as long as
//!   a 429's `Retry-After` says).
//!
//! Each endpoint has its own quota: bulk users and bulk events are separate endpoints
//! with 500 calls a minute each.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use tokio::time::Instant;

use time::OffsetDateTime;

use super::backoff;
use crate::config::WebEngageSettings;
use crate::store::rate_windows;
use crate::webengage::client::{CallReport, Endpoint};

/// After a database error taking permits, before trying again.
const DB_RETRY: Duration = Duration::from_secs(1);

/// When to call next, from WebEngage's own answers.
#[derive(Debug, Default)]
struct Schedule {
    /// After a 429 or `Remaining: 0`: nothing before this.
    closed_until: Option<Instant>,
    /// While `Remaining` is low: one call per `gap` until the window ends.
    spacing: Option<(Duration, Instant)>,
    next_slot: Option<Instant>,
}

impl Schedule {
    /// When the next call may go, reserving that slot when calls are spaced.
    fn next_call(&mut self, now: Instant) -> Instant {
        let mut at = self.closed_until.filter(|c| *c > now).unwrap_or(now);
        if let Some((gap, until)) = self.spacing.filter(|(_, until)| *until > at) {
            at = self.next_slot.map_or(at, |slot| slot.max(at)).min(until);
            self.next_slot = Some(at + gap);
        }
        at
    }
}

/// Shared permits this process holds for the current window.
#[derive(Debug)]
struct Reserve {
    tokens: u32,
    valid_until: Instant,
}

/// One quota: its shared name, size, local bucket and schedule.
struct Gate {
    name: &'static str,
    quota: u32,
    bucket: DefaultDirectRateLimiter,
    schedule: Mutex<Schedule>,
    reserve: tokio::sync::Mutex<Reserve>,
}

impl Gate {
    fn new(name: &'static str, per_window: u32, window: Duration) -> Gate {
        let quota = per_window.max(1);
        let period = (window / quota).max(Duration::from_nanos(1));
        // A burst of a sixth of the window's quota: a backlog starts fast without
        // spending the whole window in its first instant.
        let burst = NonZeroU32::new(quota.div_ceil(6)).unwrap_or(NonZeroU32::MIN);
        let rate = Quota::with_period(period).map(|q| q.allow_burst(burst));
        Gate {
            name,
            quota,
            bucket: RateLimiter::direct(rate.unwrap_or_else(|| Quota::per_minute(burst))),
            schedule: Mutex::new(Schedule::default()),
            reserve: tokio::sync::Mutex::new(Reserve {
                tokens: 0,
                valid_until: Instant::now(),
            }),
        }
    }

    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many shared permits to take per database round trip: a fiftieth of the
    /// quota, 1 to 10. Permits a process holds when its window ends are lost, so small
    /// quotas take them one by one.
    fn block(&self) -> u32 {
        (self.quota / 50).clamp(1, 10)
    }

    /// `block`, or fewer near the end of a window: no more than this process's bucket
    /// lets it spend before the window's guard, so few permits are lost with it.
    fn want(&self, usable_for: Duration, window: Duration) -> u32 {
        let share = usable_for.as_secs_f64() / window.as_secs_f64().max(f64::EPSILON);
        let spendable = (f64::from(self.quota) * share).ceil() as u32;
        spendable.clamp(1, self.block())
    }
}

pub struct Limiter {
    users: Gate,
    events: Gate,
    bulk_users: Gate,
    bulk_events: Gate,
    transaction: Gate,
    window: Duration,
    /// The database that coordinates the quota across processes; None in unit tests.
    pool: Option<PgPool>,
}

impl Limiter {
    /// `window` is the quota period (`BRIDGE_RATE_WINDOW`, a minute except in tests).
    pub fn new(settings: &WebEngageSettings, window: Duration, pool: Option<PgPool>) -> Limiter {
        Limiter {
            users: Gate::new("users", settings.limit_users_per_min, window),
            events: Gate::new("events", settings.limit_events_per_min, window),
            bulk_users: Gate::new("bulk-users", settings.bulk_users_per_min(), window),
            bulk_events: Gate::new("bulk-events", settings.bulk_events_per_min(), window),
            transaction: Gate::new("transaction", settings.limit_transaction_per_min, window),
            window,
            pool,
        }
    }

    fn gate(&self, endpoint: &Endpoint) -> &Gate {
        match endpoint {
            Endpoint::Users => &self.users,
            Endpoint::Events => &self.events,
            Endpoint::BulkUsers => &self.bulk_users,
            Endpoint::BulkEvents => &self.bulk_events,
            Endpoint::Transaction { .. } => &self.transaction,
        }
    }

    /// Waits until a call to `endpoint` is within every quota; the time spent waiting
    /// is counted in `bridge_limiter_wait_seconds_total`.
    pub async fn ready(&self, endpoint: &Endpoint) {
        let started = Instant::now();
        let gate = self.gate(endpoint);
        let at = gate.schedule().next_call(started);
        tokio::time::sleep_until(at).await;
        gate.bucket.until_ready().await;
        if let Some(pool) = &self.pool {
            self.take_shared(pool, gate).await;
        }
        let waited = started.elapsed().as_secs_f64();
        if waited > 0.0 {
            // A float total: the metrics facade's counters are integers, so this is a
            // gauge that only ever grows.
            metrics::gauge!("bridge_limiter_wait_seconds_total", "endpoint" => endpoint.name())
                .increment(waited);
        }
    }

    /// Takes one permit of the shared quota, from this process's reserve or, when that
    /// is empty or its window over, from the database; waits for the next window when
    /// the current one is spent.
    async fn take_shared(&self, pool: &PgPool, gate: &Gate) {
        let mut reserve = gate.reserve.lock().await;
        loop {
            if reserve.tokens > 0 && Instant::now() < reserve.valid_until {
                reserve.tokens -= 1;
                return;
            }
            let usable_for = backoff::until_next_window(self.window, OffsetDateTime::now_utc())
                .saturating_sub(self.guard());
            let want = gate.want(usable_for, self.window);
            let grant = rate_windows::take(pool, gate.name, self.window, want, gate.quota).await;
            let grant = match grant {
                Ok(grant) => grant,
                Err(e) => {
                    tracing::warn!(quota = gate.name, error = %e, "cannot take rate permits; retrying");
                    tokio::time::sleep(DB_RETRY).await;
                    continue;
                }
            };
            let guard = self.guard();
            if grant.granted > 0 && grant.window_left > guard {
                reserve.tokens = grant.granted - 1;
                reserve.valid_until = Instant::now() + (grant.window_left - guard);
                return;
            }
            reserve.tokens = 0;
            tracing::debug!(quota = gate.name, wait = ?grant.window_left, "shared quota spent; waiting for the next window");
            tokio::time::sleep(grant.window_left + Duration::from_millis(5)).await;
        }
    }

    /// Permits taken at the very end of a window could reach WebEngage in the next one,
    /// which has its own full quota: they are not used that late.
    fn guard(&self) -> Duration {
        (self.window / 20).min(Duration::from_millis(250))
    }

    /// Adjusts the endpoint's schedule to what WebEngage says of the account's quota.
    pub fn observe(&self, endpoint: &Endpoint, report: &CallReport) {
        let gate = self.gate(endpoint);
        let now = Instant::now();
        let window_end = now + backoff::until_next_window(self.window, OffsetDateTime::now_utc());
        let rate = report.rate_limit;
        let limit = rate.limit.unwrap_or(gate.quota).max(1);
        let limited = report.http_status == Some(429);
        let mut schedule = gate.schedule();
        match (limited, rate.remaining) {
            (true, _) | (_, Some(0)) => {
                let reopens = match rate.retry_after {
                    Some(wait) if limited => now + wait,
                    _ => window_end,
                };
                let later = schedule.closed_until.map_or(reopens, |c| c.max(reopens));
                schedule.closed_until = Some(later);
            }
            // Below a tenth of the limit: spread what is left over the time left, so
            // the endpoint never runs dry for everyone sharing the account.
            (_, Some(remaining)) if u64::from(remaining) * 10 < u64::from(limit) => {
                let gap = (window_end - now) / remaining;
                schedule.spacing = Some((gap, window_end));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::webengage::client::RateLimit;

    fn result(status: u16, remaining: Option<u32>, limit: Option<u32>) -> CallReport {
        CallReport {
            http_status: Some(status),
            rate_limit: RateLimit {
                limit,
                remaining,
                retry_after: None,
            },
            excerpt: None,
            latency: Duration::ZERO,
            failure: None,
        }
    }

    fn limiter() -> Limiter {
        Limiter::new(&limiter_settings(), Duration::from_secs(60), None)
    }

    fn limiter_settings() -> crate::config::WebEngageSettings {
        crate::config::WebEngageSettings {
            license_code: None,
            api_key: None,
            api_key_file: None,
            data_center: crate::config::DataCenter::Global,
            base_url: None,
            bulk: true,
            limit_users_per_min: 60,
            limit_events_per_min: 60,
            limit_bulk_per_min: Some(60),
            limit_bulk_users_per_min: None,
            limit_bulk_events_per_min: None,
            limit_transaction_per_min: 60,
        }
    }

    fn delay(gate: &Gate) -> Duration {
        let now = Instant::now();
        gate.schedule().next_call(now) - now
    }

    #[test]
    fn a_spent_quota_closes_only_its_endpoint() {
        let limiter = limiter();
        limiter.observe(&Endpoint::Users, &result(201, Some(50), None));
        assert_eq!(delay(&limiter.users), Duration::ZERO);
        limiter.observe(&Endpoint::Users, &result(201, Some(0), None));
        assert!(delay(&limiter.users) > Duration::ZERO);
        limiter.observe(&Endpoint::BulkEvents, &result(429, None, None));
        assert!(delay(&limiter.bulk_events) > Duration::ZERO);
        assert_eq!(delay(&limiter.bulk_users), Duration::ZERO);
        assert_eq!(delay(&limiter.events), Duration::ZERO);
    }

    #[test]
    fn a_low_remaining_spaces_calls_over_the_rest_of_the_window() {
        let limiter = limiter();
        // 4 left of 1000: one call per quarter of what is left of the window.
        limiter.observe(&Endpoint::Events, &result(201, Some(4), Some(1000)));
        let left = backoff::until_next_window(Duration::from_secs(60), OffsetDateTime::now_utc());
        let first = delay(&limiter.events);
        let second = delay(&limiter.events);
        assert!(first < Duration::from_millis(50), "{first:?}");
        let gap = second - first;
        assert!(
            gap + Duration::from_millis(50) >= left / 4 && gap <= left / 4,
            "{gap:?}"
        );
        // 200 of 1000 left is plenty: no spacing.
        assert_eq!(delay(&limiter.users), Duration::ZERO);
    }

    #[test]
    fn spacing_starts_below_a_tenth_of_the_limit_only() {
        let limiter = limiter();
        // Exactly a tenth left is not yet low: calls go as fast as the bucket allows.
        limiter.observe(&Endpoint::Events, &result(201, Some(100), Some(1000)));
        assert_eq!(delay(&limiter.events), Duration::ZERO);
        assert_eq!(delay(&limiter.events), Duration::ZERO);
        // Plenty left of the configured quota (no limit header): no spacing either.
        limiter.observe(&Endpoint::Users, &result(201, Some(50), None));
        assert_eq!(delay(&limiter.users), Duration::ZERO);
        assert_eq!(delay(&limiter.users), Duration::ZERO);
        // One under a tenth: the second call waits.
        limiter.observe(&Endpoint::Events, &result(201, Some(99), Some(1000)));
        assert_eq!(delay(&limiter.events), Duration::ZERO);
        assert!(delay(&limiter.events) > Duration::ZERO);
    }

    #[test]
    fn a_spent_quota_on_a_2xx_waits_for_the_window_whatever_retry_after_says() {
        let limiter = limiter();
        let mut spent = result(201, Some(0), None);
        spent.rate_limit.retry_after = Some(Duration::from_secs(3600));
        limiter.observe(&Endpoint::Users, &spent);
        let held = delay(&limiter.users);
        assert!(
            held > Duration::ZERO && held <= Duration::from_secs(60),
            "{held:?}"
        );
    }

    #[test]
    fn permits_are_not_used_in_a_windows_last_twentieth_or_250_ms() {
        assert_eq!(limiter().guard(), Duration::from_millis(250));
        let short = Limiter::new(&limiter_settings(), Duration::from_secs(2), None);
        assert_eq!(short.guard(), Duration::from_millis(100));
    }

    #[test]
    fn the_burst_is_a_sixth_of_the_window() {
        let gate = Gate::new("users", 60, Duration::from_secs(60));
        let allowed = (0..20).filter(|_| gate.bucket.check().is_ok()).count();
        assert_eq!(allowed, 10);
        assert_eq!(gate.block(), 1);
        assert_eq!(Gate::new("bulk", 500, Duration::from_secs(60)).block(), 10);
    }

    #[test]
    fn a_429_with_retry_after_closes_its_endpoint_that_long() {
        let limiter = limiter();
        let mut limited = result(429, None, None);
        limited.rate_limit.retry_after = Some(Duration::from_secs(7));
        limiter.observe(&Endpoint::BulkUsers, &limited);
        let held = delay(&limiter.bulk_users);
        assert!(
            held > Duration::from_millis(6900) && held <= Duration::from_secs(7),
            "{held:?}"
        );
        // Retry-After on a 2xx says nothing about the quota.
        let mut fine = result(201, Some(100), None);
        fine.rate_limit.retry_after = Some(Duration::from_secs(30));
        limiter.observe(&Endpoint::BulkEvents, &fine);
        assert_eq!(delay(&limiter.bulk_events), Duration::ZERO);
    }

    #[test]
    fn permits_taken_near_a_windows_end_are_few() {
        let minute = Duration::from_secs(60);
        let gate = Gate::new("bulk-users", 500, minute);
        assert_eq!(gate.want(Duration::from_secs(30), minute), 10);
        // 500 a minute is 8.3 a second: half a second before the guard, 5 at most.
        assert_eq!(gate.want(Duration::from_millis(500), minute), 5);
        assert_eq!(gate.want(Duration::ZERO, minute), 1);
    }
}
