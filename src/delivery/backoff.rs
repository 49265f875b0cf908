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

/// How long until the next minute starts: WebEngage's quotas are per minute and it
/// sends no `Retry-After`.
pub fn until_next_minute() -> Duration {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into_minute = Duration::from_millis((since_epoch.as_millis() % 60_000) as u64);
    Duration::from_secs(60) - into_minute
}

/// When the next minute starts, as a row's `next_attempt_at`.
pub fn next_minute() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let into_minute = time::Duration::seconds(i64::from(now.second()))
        + time::Duration::nanoseconds(i64::from(now.nanosecond()));
    now - into_minute + time::Duration::MINUTE
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
    fn next_minute_is_within_a_minute() {
        let d = until_next_minute();
        assert!(d > Duration::ZERO && d <= Duration::from_secs(60));
        let at = next_minute();
        assert_eq!((at.second(), at.nanosecond()), (0, 0));
        assert!(at > OffsetDateTime::now_utc());
    }
}
