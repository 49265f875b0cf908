//! What a WebEngage answer means for the rows a call carried, per `webengage.md`: one
//! pure function (`decide`) from the call's outcome and the row's facts to the row's
//! fate. The worker only carries fates out (`settle`).

use std::time::Duration;

use time::OffsetDateTime;

use super::backoff;
use crate::config::DeliverySettings;
use crate::webengage::client::{CallReport, Endpoint};

/// What WebEngage's answer to one call says, whatever the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: queued by WebEngage.
    Accepted,
    /// 400 (408/412 for transactions, 413, 422): the data is wrong, retrying cannot help.
    Rejected(String),
    /// 401 (and 403): the key is wrong or lacks permissions.
    Unauthorized(String),
    /// 404: wrong host or license code.
    NotFound(String),
    /// 429: over the per-minute quota; `Retry-After` when WebEngage sent one.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeout, connection error, anything unexpected.
    Transient(String),
}

impl Answer {
    /// The value stored in `delivery_attempts.outcome`.
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Accepted => "delivered",
            Answer::Rejected(_) => "rejected",
            Answer::Unauthorized(_) => "unauthorized",
            Answer::NotFound(_) => "not_found",
            Answer::RateLimited { .. } => "rate_limited",
            Answer::Transient(_) => "transient",
        }
    }

    /// Whether WebEngage itself answered as a working service would (anything but a
    /// transient failure): what closes the circuit breaker's run of failures.
    pub fn is_transient(&self) -> bool {
        matches!(self, Answer::Transient(_))
    }
}

/// Reads one call's report, per `webengage.md`.
pub fn classify(report: &CallReport, endpoint: &Endpoint) -> Answer {
    let Some(code) = report.http_status else {
        return Answer::Transient(report.describe());
    };
    match code {
        200..=299 => Answer::Accepted,
        400 => Answer::Rejected(report.describe()),
        408 | 412 if endpoint.is_transaction() => Answer::Rejected(report.describe()),
        401 | 403 => Answer::Unauthorized(report.describe()),
        404 => Answer::NotFound(report.describe()),
        429 => Answer::RateLimited {
            retry_after: report.rate_limit.retry_after,
        },
        // 413 and 422 will not get better by trying again either.
        413 | 422 => Answer::Rejected(report.describe()),
        _ => Answer::Transient(report.describe()),
    }
}

/// The settings the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub retry_base: Duration,
    pub retry_max_delay: Duration,
    pub retry_max_age: Duration,
    /// The quota window (a minute; shorter only in tests).
    pub rate_window: Duration,
    /// Failed calls in a row that make the destination `degraded`; 0: never.
    pub breaker_threshold: usize,
}

impl Policy {
    /// 2 s base, 60 s cap, an hour's age, minute windows, a breaker at 10 (unit tests).
    #[cfg(test)]
    pub(crate) fn example() -> Policy {
        Policy {
            retry_base: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(60),
            retry_max_age: Duration::from_secs(3600),
            rate_window: Duration::from_secs(60),
            breaker_threshold: 10,
        }
    }

    pub fn new(settings: &DeliverySettings) -> Policy {
        Policy {
            retry_base: settings.retry_base,
            retry_max_delay: settings.retry_max_delay,
            retry_max_age: settings.retry_max_age,
            rate_window: settings.rate_window,
            breaker_threshold: settings.breaker_threshold,
        }
    }
}

/// What the policy knows of a row when WebEngage has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The records the call carried: a rejected call of more than one is split.
    pub records: usize,
    /// Attempts already charged (for a bulk call, the most of any of its rows, so its
    /// rows come due again together).
    pub attempts: i32,
    /// How long the row has been trying, outages of the destination not counted.
    pub age: Duration,
    /// The circuit breaker's count: failed calls in a row, this one included, each
    /// carrying rows the run had not failed on yet.
    pub failed_calls: usize,
}

/// What happens to a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// Never to be sent again (charged).
    Dead {
        why: String,
    },
    /// A bulk call WebEngage rejected: send its halves to find the bad records.
    Split,
    /// Try again at `at` (charged).
    Retry {
        at: OffsetDateTime,
        why: String,
    },
    /// As `Retry`, and the destination is failing: stop claiming, probe (`degraded`).
    Degrade {
        at: OffsetDateTime,
        why: String,
    },
    /// Back to pending uncharged; nothing can be delivered until someone fixes the
    /// settings: pause the destination.
    Pause {
        why: String,
    },
    /// Back to pending uncharged, due at `at` (the next quota window, or `Retry-After`).
    Wait {
        at: OffsetDateTime,
    },
}

/// The fate of a row after `answer`. `jitter` (0 to 0.25) spreads retries that failed
/// together; pass the same value for the rows of one call so they come due together.
pub fn decide(
    answer: &Answer,
    facts: &Facts,
    policy: &Policy,
    now: OffsetDateTime,
    jitter: f64,
) -> Fate {
    match answer {
        Answer::Accepted => Fate::Delivered,
        Answer::Rejected(_) if facts.records > 1 => Fate::Split,
        Answer::Rejected(why) => Fate::Dead { why: why.clone() },
        Answer::Unauthorized(message) => Fate::Pause {
            why: format!(
                "WebEngage refused delivery ({message}); check WEBENGAGE_API_KEY and its Account Management and Update Data permissions"
            ),
        },
        Answer::NotFound(message) => Fate::Pause {
            why: format!(
                "WebEngage refused delivery ({message}); check WEBENGAGE_LICENSE_CODE and the data center or WEBENGAGE_BASE_URL"
            ),
        },
        Answer::RateLimited { retry_after } => Fate::Wait {
            at: now
                + retry_after
                    .unwrap_or_else(|| backoff::until_next_window(policy.rate_window, now)),
        },
        Answer::Transient(message) => transient(message, facts, policy, now, jitter),
    }
}

fn transient(
    message: &str,
    facts: &Facts,
    policy: &Policy,
    now: OffsetDateTime,
    jitter: f64,
) -> Fate {
    let tries = facts.attempts.saturating_add(1);
    if facts.age > policy.retry_max_age {
        let over = humantime::format_duration(Duration::from_secs(facts.age.as_secs()));
        return Fate::Dead {
            why: format!("gave up after {tries} attempts over {over}: {message}"),
        };
    }
    let at = now + backoff::retry_delay(policy, tries, jitter);
    if policy.breaker_threshold > 0 && facts.failed_calls >= policy.breaker_threshold {
        return Fate::Degrade {
            at,
            why: format!(
                "WebEngage failed {} calls in a row (last: {message}); probing before sending more",
                facts.failed_calls
            ),
        };
    }
    Fate::Retry {
        at,
        why: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webengage::client::RateLimit;

    fn policy() -> Policy {
        Policy::example()
    }

    fn facts() -> Facts {
        Facts {
            records: 1,
            attempts: 0,
            age: Duration::from_secs(5),
            failed_calls: 1,
        }
    }

    /// 12:00:30 UTC: half a minute into a quota window.
    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-27 12:00:30 UTC)
    }

    fn report(status: Option<u16>, body: &str) -> CallReport {
        CallReport {
            http_status: status,
            rate_limit: RateLimit::default(),
            excerpt: (!body.is_empty()).then(|| body.to_owned()),
            latency: Duration::from_millis(5),
            failure: None,
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        classify(&report(Some(status), body), &Endpoint::Users)
    }

    #[test]
    fn classification_follows_the_webengage_table() {
        let err = r#"{"response":{"status":"error","message":"Invalid userId"}}"#;
        assert_eq!(answer(201, ""), Answer::Accepted);
        assert_eq!(answer(204, ""), Answer::Accepted);
        assert_eq!(
            answer(400, err),
            Answer::Rejected("HTTP 400: Invalid userId".into())
        );
        assert_eq!(
            answer(401, err),
            Answer::Unauthorized("HTTP 401: Invalid userId".into())
        );
        assert!(matches!(answer(403, ""), Answer::Unauthorized(_)));
        assert_eq!(
            answer(404, ""),
            Answer::NotFound("HTTP 404: (empty response)".into())
        );
        assert_eq!(answer(429, ""), Answer::RateLimited { retry_after: None });
        assert_eq!(
            answer(502, "<html>bad gateway</html>"),
            Answer::Transient("HTTP 502: <html>bad gateway</html>".into())
        );
        assert!(matches!(answer(413, ""), Answer::Rejected(_)));
        assert!(matches!(answer(422, ""), Answer::Rejected(_)));
        assert!(matches!(answer(301, ""), Answer::Transient(_)));
        // 408 and 412 are final only for transactional campaigns.
        assert!(matches!(answer(408, ""), Answer::Transient(_)));
        assert!(matches!(answer(412, ""), Answer::Transient(_)));
        let campaign = Endpoint::Transaction {
            campaign_id: "c".into(),
        };
        for code in [408, 412] {
            assert!(matches!(
                classify(&report(Some(code), ""), &campaign),
                Answer::Rejected(_)
            ));
        }
    }

    #[test]
    fn no_answer_is_transient_and_retry_after_is_read() {
        let timeout = CallReport {
            failure: Some(crate::webengage::client::FailureKind::Timeout),
            ..report(None, "timeout: operation timed out")
        };
        assert_eq!(
            classify(&timeout, &Endpoint::Events),
            Answer::Transient("timeout: operation timed out".into())
        );
        let limited = CallReport {
            rate_limit: RateLimit {
                retry_after: Some(Duration::from_secs(7)),
                ..RateLimit::default()
            },
            ..report(Some(429), "")
        };
        assert_eq!(
            classify(&limited, &Endpoint::BulkUsers),
            Answer::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn labels_name_each_answer() {
        let labels: Vec<&str> = [
            Answer::Accepted,
            Answer::Rejected(String::new()),
            Answer::Unauthorized(String::new()),
            Answer::NotFound(String::new()),
            Answer::RateLimited { retry_after: None },
            Answer::Transient(String::new()),
        ]
        .iter()
        .map(Answer::label)
        .collect();
        assert_eq!(
            labels,
            [
                "delivered",
                "rejected",
                "unauthorized",
                "not_found",
                "rate_limited",
                "transient"
            ]
        );
    }

    #[test]
    fn only_a_transient_answer_counts_as_a_failed_call_for_the_breaker() {
        // Any real answer (even a refusal) shows WebEngage is up and ends a run of
        // failures; only a 5xx, timeout or connection error extends it.
        assert!(Answer::Transient("HTTP 503: busy".into()).is_transient());
        for answered in [
            Answer::Accepted,
            Answer::Rejected(String::new()),
            Answer::Unauthorized(String::new()),
            Answer::NotFound(String::new()),
            Answer::RateLimited { retry_after: None },
        ] {
            assert!(!answered.is_transient(), "{answered:?}");
        }
    }

    fn fate(answer: &Answer, facts: &Facts) -> Fate {
        decide(answer, facts, &policy(), now(), 0.0)
    }

    #[test]
    fn accepted_is_delivered() {
        assert_eq!(fate(&Answer::Accepted, &facts()), Fate::Delivered);
    }

    #[test]
    fn a_rejected_row_is_dead_and_a_rejected_bulk_call_splits() {
        let rejected = Answer::Rejected("HTTP 400: bad".into());
        assert_eq!(
            fate(&rejected, &facts()),
            Fate::Dead {
                why: "HTTP 400: bad".into()
            }
        );
        let bulk = Facts {
            records: 2,
            ..facts()
        };
        assert_eq!(fate(&rejected, &bulk), Fate::Split);
    }

    #[test]
    fn unauthorized_and_not_found_pause_with_the_setting_to_check() {
        let Fate::Pause { why } = fate(&Answer::Unauthorized("HTTP 401: no".into()), &facts())
        else {
            panic!("a 401 pauses");
        };
        assert!(
            why.contains("HTTP 401: no") && why.contains("WEBENGAGE_API_KEY"),
            "{why}"
        );
        let Fate::Pause { why } = fate(&Answer::NotFound("HTTP 404: x".into()), &facts()) else {
            panic!("a 404 pauses");
        };
        assert!(
            why.contains("HTTP 404: x") && why.contains("WEBENGAGE_LICENSE_CODE"),
            "{why}"
        );
    }

    #[test]
    fn a_429_waits_for_the_next_window_or_for_retry_after() {
        let minute = time::macros::datetime!(2026-11-27 12:01:00 UTC);
        assert_eq!(
            fate(&Answer::RateLimited { retry_after: None }, &facts()),
            Fate::Wait { at: minute }
        );
        assert_eq!(
            fate(
                &Answer::RateLimited {
                    retry_after: Some(Duration::from_secs(7))
                },
                &facts()
            ),
            Fate::Wait {
                at: now() + Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn a_transient_failure_retries_with_backoff_from_the_attempts_so_far() {
        let failed = Answer::Transient("HTTP 503: busy".into());
        assert_eq!(
            fate(&failed, &facts()),
            Fate::Retry {
                at: now() + Duration::from_secs(2),
                why: "HTTP 503: busy".into()
            }
        );
        let third = Facts {
            attempts: 2,
            ..facts()
        };
        assert_eq!(
            fate(&failed, &third),
            Fate::Retry {
                at: now() + Duration::from_secs(8),
                why: "HTTP 503: busy".into()
            }
        );
        let jittered = decide(&failed, &third, &policy(), now(), 0.25);
        assert_eq!(
            jittered,
            Fate::Retry {
                at: now() + Duration::from_secs(10),
                why: "HTTP 503: busy".into()
            }
        );
    }

    #[test]
    fn a_transient_failure_past_the_age_limit_is_dead() {
        let failed = Answer::Transient("timeout: slow".into());
        let at_limit = Facts {
            age: Duration::from_secs(3600),
            ..facts()
        };
        assert!(matches!(fate(&failed, &at_limit), Fate::Retry { .. }));
        let old = Facts {
            attempts: 4,
            age: Duration::from_secs(3601),
            ..facts()
        };
        assert_eq!(
            fate(&failed, &old),
            Fate::Dead {
                why: "gave up after 5 attempts over 1h 1s: timeout: slow".into()
            }
        );
    }

    #[test]
    fn the_tenth_failed_call_in_a_row_degrades_the_destination() {
        let failed = Answer::Transient("HTTP 500: down".into());
        let ninth = Facts {
            failed_calls: 9,
            ..facts()
        };
        assert!(matches!(fate(&failed, &ninth), Fate::Retry { .. }));
        let tenth = Facts {
            failed_calls: 10,
            ..facts()
        };
        let Fate::Degrade { at, why } = fate(&failed, &tenth) else {
            panic!("the tenth failure degrades");
        };
        assert_eq!(at, now() + Duration::from_secs(2));
        assert!(
            why.contains("10 calls") && why.contains("HTTP 500: down"),
            "{why}"
        );
        // Old rows still die rather than degrade.
        let old = Facts {
            age: Duration::from_secs(7200),
            ..tenth
        };
        assert!(matches!(fate(&failed, &old), Fate::Dead { .. }));
        // A threshold of 0 turns the breaker off.
        let off = Policy {
            breaker_threshold: 0,
            ..policy()
        };
        assert!(matches!(
            decide(&failed, &tenth, &off, now(), 0.0),
            Fate::Retry { .. }
        ));
    }
}
