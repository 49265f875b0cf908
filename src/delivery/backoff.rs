//! Retry timing: capped exponential backoff with add-only jitter, and the wait for the
//! next rate-limit window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use time::OffsetDateTime;

use crate::config::DeliverySettings;

/// The delay before try number `attempts + 1`, where `attempts` counts the failed tries
/// so far (at least 1): `min(max_delay, base * 2^(attempts-1))` plus up to 25% more.
/// Jitter only adds, so the first retry never comes sooner than `base`, and it spreads
/// the retries of a burst that failed together.
pub fn retry_delay(settings: &DeliverySettings, attempts: i32) -> Duration {
    let jitter: f64 = rand::rng().random_range(0.0..=0.25);
    retry_delay_with_jitter(settings, attempts, jitter)
}

/// `retry_delay` with the jitter fraction given (tests).
pub fn retry_delay_with_jitter(
    settings: &DeliverySettings,
    attempts: i32,
    jitter: f64,
) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let base = settings.retry_base.saturating_mul(1 << exponent);
    let capped = base.min(settings.retry_max_delay);
    capped.mul_f64(1.0 + jitter.clamp(0.0, 0.25))
}

/// How long until the next rate window starts. WebEngage's quotas are per minute
/// (`window`, shorter only in tests), counted from the epoch like the shared windows in
/// `store::rate_windows`, and it sends no `Retry-After`.
pub fn until_next_window(window: Duration) -> Duration {
    let window_ms = window.as_millis().max(1);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into_window = since_epoch.as_millis() % window_ms;
    Duration::from_millis((window_ms - into_window) as u64)
}

/// When the next rate window starts, as a row's `next_attempt_at`.
pub fn next_window(window: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + until_next_window(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            concurrency: 1,
            retry_base: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(60),
            retry_max_age: Duration::from_secs(3600),
            pause_probe: Duration::from_secs(30),
            retention: Duration::from_secs(86400),
            audit_retention: Duration::from_secs(365 * 86400),
            rate_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn doubles_from_base_and_stops_at_the_cap() {
        let s = settings();
        assert_eq!(retry_delay_with_jitter(&s, 1, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay_with_jitter(&s, 2, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay_with_jitter(&s, 5, 0.0), Duration::from_secs(32));
        assert_eq!(retry_delay_with_jitter(&s, 6, 0.0), Duration::from_secs(60));
        assert_eq!(
            retry_delay_with_jitter(&s, 1000, 0.0),
            Duration::from_secs(60)
        );
        assert_eq!(retry_delay_with_jitter(&s, 0, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn jitter_only_adds_up_to_a_quarter() {
        let s = settings();
        for _ in 0..200 {
            let d = retry_delay(&s, 3);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }

    #[test]
    fn next_window_is_within_a_window() {
        let minute = Duration::from_secs(60);
        let d = until_next_window(minute);
        assert!(d > Duration::ZERO && d <= minute);
        let at = next_window(minute);
        assert!(at.second() == 0 || at.second() == 59, "{at}");
        assert!(at > OffsetDateTime::now_utc());
        assert!(until_next_window(Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}
