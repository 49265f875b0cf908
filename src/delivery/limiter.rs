//! Client-side rate limiting per WebEngage endpoint, at the configured per-minute quotas.
//!
//! The quota belongs to the WebEngage account, and other systems spend it too, so the
//! token bucket alone is not enough: a 429, or `X-RateLimit-Remaining: 0`, closes the
//! endpoint until the next minute starts.

use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::backoff;
use super::client::{CallResult, Endpoint, Outcome};
use crate::config::WebEngageSettings;

/// One endpoint's bucket and, after a 429, when it opens again.
struct Gate {
    bucket: DefaultDirectRateLimiter,
    closed_until: Mutex<Option<Instant>>,
}

impl Gate {
    fn new(per_minute: u32) -> Gate {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        // A burst of ten seconds' worth: a backlog starts fast without spending the
        // whole minute's quota in its first second.
        let burst = NonZeroU32::new(rate.get().div_ceil(6)).unwrap_or(NonZeroU32::MIN);
        Gate {
            bucket: RateLimiter::direct(Quota::per_minute(rate).allow_burst(burst)),
            closed_until: Mutex::new(None),
        }
    }

    fn reopens_at(&self) -> Option<Instant> {
        let guard = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        guard.filter(|at| *at > Instant::now())
    }

    fn close_until(&self, at: Instant) {
        let mut guard = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none_or(|current| current < at) {
            *guard = Some(at);
        }
    }
}

pub struct Limiter {
    users: Gate,
    events: Gate,
    bulk: Gate,
    transaction: Gate,
}

impl Limiter {
    pub fn new(settings: &WebEngageSettings) -> Limiter {
        Limiter {
            users: Gate::new(settings.limit_users_per_min),
            events: Gate::new(settings.limit_events_per_min),
            bulk: Gate::new(settings.limit_bulk_per_min),
            transaction: Gate::new(settings.limit_transaction_per_min),
        }
    }

    fn gate(&self, endpoint: &Endpoint) -> &Gate {
        match endpoint {
            Endpoint::Users => &self.users,
            Endpoint::Events => &self.events,
            // Both bulk endpoints share the documented 500/min.
            Endpoint::BulkUsers | Endpoint::BulkEvents => &self.bulk,
            Endpoint::Transaction { .. } => &self.transaction,
        }
    }

    /// Waits until a call to `endpoint` is within quota.
    pub async fn ready(&self, endpoint: &Endpoint) {
        let gate = self.gate(endpoint);
        if let Some(at) = gate.reopens_at() {
            tokio::time::sleep_until(at).await;
        }
        gate.bucket.until_ready().await;
    }

    /// Closes the endpoint until the next minute when WebEngage says its quota is spent.
    pub fn observe(&self, endpoint: &Endpoint, result: &CallResult) {
        let spent =
            result.outcome == Outcome::RateLimited || result.rate_limit_remaining == Some(0);
        if spent {
            self.gate(endpoint)
                .close_until(Instant::now() + backoff::until_next_minute());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(outcome: Outcome, remaining: Option<u32>) -> CallResult {
        CallResult {
            outcome,
            http_status: Some(200),
            latency: Duration::ZERO,
            excerpt: None,
            rate_limit_remaining: remaining,
        }
    }

    #[test]
    fn a_spent_quota_closes_only_its_endpoint() {
        let settings = crate::config::WebEngageSettings {
            license_code: None,
            api_key: None,
            data_center: crate::config::DataCenter::Global,
            base_url: None,
            bulk: true,
            limit_users_per_min: 60,
            limit_events_per_min: 60,
            limit_bulk_per_min: 60,
            limit_transaction_per_min: 60,
        };
        let limiter = Limiter::new(&settings);
        limiter.observe(&Endpoint::Users, &result(Outcome::Delivered, Some(5)));
        assert!(limiter.users.reopens_at().is_none());
        limiter.observe(&Endpoint::Users, &result(Outcome::Delivered, Some(0)));
        assert!(limiter.users.reopens_at().is_some());
        limiter.observe(&Endpoint::BulkEvents, &result(Outcome::RateLimited, None));
        assert!(limiter.bulk.reopens_at().is_some());
        assert!(limiter.events.reopens_at().is_none());
    }

    #[test]
    fn the_burst_is_a_sixth_of_the_minute() {
        let gate = Gate::new(60);
        let allowed = (0..20).filter(|_| gate.bucket.check().is_ok()).count();
        assert_eq!(allowed, 10);
    }
}
