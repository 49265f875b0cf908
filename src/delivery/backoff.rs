//! Retry timing: capped exponential backoff with add-only jitter, and the wait for the
//! next rate-limit window. Pure: the jitter and the time are given.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::policy::Policy;

/// A jitter fraction for `retry_delay`: 0 to 0.25.
pub fn jitter() -> f64 {
    rand::rng().random_range(0.0..=0.25)
}

/// The delay before try number `tries + 1`, where `tries` counts the failed tries so
/// far (at least 1): `base * 2^(tries-1)` plus `jitter` (0 to 25%) more, never more
/// than `retry_max_delay`. Jitter only adds, so the first retry never comes sooner than
/// `base`, and it spreads the retries of a burst that failed together.
pub fn retry_delay(policy: &Policy, tries: i32, jitter: f64) -> Duration {
    let exponent = u32::try_from(tries.saturating_sub(1)).unwrap_or(0).min(30);
    let delay = policy.retry_base.saturating_mul(1 << exponent);
    let jittered = delay
        .min(policy.retry_max_delay)
        .mul_f64(1.0 + jitter.clamp(0.0, 0.25));
    jittered.min(policy.retry_max_delay)
}

/// How long from `now` until the next rate window starts. WebEngage's quotas are per
/// minute (`window`, shorter only in tests), counted from the epoch like the shared
/// windows in `store::rate_windows`.
pub fn until_next_window(window: Duration, now: OffsetDateTime) -> Duration {
    let window_ms = window.as_millis().max(1) as i128;
    let since_epoch_ms = now.unix_timestamp_nanos() / 1_000_000;
    let into_window = since_epoch_ms.rem_euclid(window_ms);
    Duration::from_millis((window_ms - into_window) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::example()
    }

    #[test]
    fn doubles_from_base_and_stops_at_the_cap() {
        let p = policy();
        assert_eq!(retry_delay(&p, 1, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(&p, 2, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(&p, 5, 0.0), Duration::from_secs(32));
        assert_eq!(retry_delay(&p, 6, 0.0), Duration::from_secs(60));
        assert_eq!(retry_delay(&p, 1000, 0.0), Duration::from_secs(60));
        assert_eq!(retry_delay(&p, 0, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn jitter_only_adds_up_to_a_quarter() {
        let p = policy();
        let delays: Vec<Duration> = (0..200).map(|_| retry_delay(&p, 3, jitter())).collect();
        let (low, high) = (Duration::from_secs(8), Duration::from_secs(10));
        assert!(delays.iter().all(|d| *d >= low && *d <= high), "{delays:?}");
        // Without jitter every delay would be 8 s: it must spread them.
        assert!(
            delays.iter().any(|d| *d > low + Duration::from_millis(500)),
            "no jitter: {delays:?}"
        );
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "every delay the same: {delays:?}"
        );
        assert_eq!(retry_delay(&p, 3, 0.25), high);
        assert_eq!(retry_delay(&p, 3, 1.0), high, "jitter is at most a quarter");
    }

    #[test]
    fn jitter_never_passes_the_max_delay() {
        let p = policy();
        // 32 s + 25% would be 40 s (under the cap); 64 s is capped before jitter and after.
        assert_eq!(retry_delay(&p, 5, 0.25), Duration::from_secs(40));
        assert_eq!(retry_delay(&p, 6, 0.25), Duration::from_secs(60));
        // 48 s + 25% = 60 s exactly; 56 s + 25% = 70 s, cut to the cap.
        let odd = Policy {
            retry_base: Duration::from_secs(7),
            ..p
        };
        assert_eq!(retry_delay(&odd, 4, 0.25), Duration::from_secs(60));
        for tries in 1..40 {
            assert!(retry_delay(&p, tries, jitter()) <= p.retry_max_delay);
        }
    }

    #[test]
    fn the_next_window_starts_on_the_minute() {
        let minute = Duration::from_secs(60);
        let at = time::macros::datetime!(2026-11-27 12:00:30.250 UTC);
        assert_eq!(until_next_window(minute, at), Duration::from_millis(29_750));
        let on = time::macros::datetime!(2026-11-27 12:00:00 UTC);
        assert_eq!(until_next_window(minute, on), minute);
        assert_eq!(
            until_next_window(Duration::from_secs(2), at),
            Duration::from_millis(1750)
        );
    }
}
