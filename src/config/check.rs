//! Every problem in the settings, found in one pass at start, each naming its variable:
//! clap alone stops at the first bad value, and an operator fixing a deployment should
//! see them all at once. The process then exits 2 (`cli`).

use std::time::Duration;

use clap::ValueEnum;

use super::secrets::{SECRETS, secret};
use super::{DataCenter, LogFormat, parse_byte_size, parse_duration};

/// The range a duration, size or count must lie in, so that no accepted value can
/// overflow later (a retry delay added to a timestamp, a buffer of the body size).
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    Duration { min: Duration, max: Duration },
    Size { min: usize, max: usize },
    Count { min: u64, max: u64 },
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const DAY: u64 = 86_400;

/// Every bounded setting by its clap id (the field name), with the range
/// docs/configuration.md gives it.
pub const BOUNDS: &[(&str, Bound)] = &[
    (
        "max_inflight_bytes",
        Bound::Size {
            min: 1024 * 1024,
            max: 16 * 1024 * 1024 * 1024,
        },
    ),
    (
        "body_timeout",
        Bound::Duration {
            min: secs(1),
            max: secs(600),
        },
    ),
    (
        "max_records",
        Bound::Count {
            min: 1,
            max: 100_000,
        },
    ),
    (
        "audit_retention",
        Bound::Duration {
            min: secs(DAY),
            max: secs(3650 * DAY),
        },
    ),
    (
        "max_body",
        Bound::Size {
            min: 1024,
            max: 256 * 1024 * 1024,
        },
    ),
    ("http_workers", Bound::Count { min: 1, max: 64 }),
    ("concurrency", Bound::Count { min: 1, max: 256 }),
    (
        "limit_users_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    (
        "limit_events_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    (
        "limit_bulk_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    (
        "limit_bulk_users_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    (
        "limit_bulk_events_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    // 0 turns the circuit breaker off.
    (
        "breaker_threshold",
        Bound::Count {
            min: 0,
            max: 1_000_000,
        },
    ),
    (
        "limit_transaction_per_min",
        Bound::Count {
            min: 1,
            max: 100_000_000,
        },
    ),
    (
        "retry_base",
        Bound::Duration {
            min: Duration::from_millis(10),
            max: secs(3600),
        },
    ),
    (
        "retry_max_delay",
        Bound::Duration {
            min: Duration::from_millis(100),
            max: secs(7 * DAY),
        },
    ),
    (
        "retry_max_age",
        Bound::Duration {
            min: secs(60),
            max: secs(365 * DAY),
        },
    ),
    (
        "pause_probe",
        Bound::Duration {
            min: Duration::from_millis(100),
            max: secs(DAY),
        },
    ),
    (
        "retention",
        Bound::Duration {
            min: secs(3600),
            max: secs(3650 * DAY),
        },
    ),
    (
        "rate_window",
        Bound::Duration {
            min: secs(1),
            max: secs(3600),
        },
    ),
];

impl Bound {
    /// `value` parsed and within the bound, or why not (with the range).
    pub fn check(&self, value: &str) -> Result<(), String> {
        match *self {
            Bound::Duration { min, max } => {
                let d = parse_duration(value)?;
                if d < min || d > max {
                    return Err(format!("`{value}` is outside {}", self.range()));
                }
            }
            Bound::Size { min, max } => {
                let n = parse_byte_size(value)?;
                if n < min || n > max {
                    return Err(format!("`{value}` is outside {}", self.range()));
                }
            }
            Bound::Count { min, max } => match value.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => {}
                Ok(_) => return Err(format!("`{value}` is outside {}", self.range())),
                Err(_) => {
                    return Err(format!(
                        "`{value}` is not a whole number in {}",
                        self.range()
                    ));
                }
            },
        }
        Ok(())
    }

    /// `1KiB..=256MiB`, as docs/configuration.md writes it.
    pub fn range(&self) -> String {
        match *self {
            Bound::Duration { min, max } => format!("{}..={}", duration(min), duration(max)),
            Bound::Size { min, max } => format!("{}..={}", size(min), size(max)),
            Bound::Count { min, max } => format!("{min}..={max}"),
        }
    }
}

/// `30d`, `1h`, `10ms`: the largest unit that divides it.
fn duration(d: Duration) -> String {
    const UNITS: [(u128, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    let ms = d.as_millis();
    UNITS
        .iter()
        .find(|(unit, _)| ms >= *unit && ms.is_multiple_of(*unit))
        .map_or_else(
            || format!("{ms}ms"),
            |(unit, name)| format!("{}{name}", ms / unit),
        )
}

fn size(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS
        .iter()
        .find(|(unit, _)| n >= *unit && n.is_multiple_of(*unit))
        .map_or_else(
            || n.to_string(),
            |(unit, name)| format!("{}{name}", n / unit),
        )
}

/// Every problem in the settings of the command in `args`. Empty when all is well, or
/// when clap itself will explain the command line (unknown flags, `--help`).
pub fn problems<I, T>(command: clap::Command, args: I) -> Vec<String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = as_strings(command);
    let Ok(matches) = command.clone().try_get_matches_from(args) else {
        return Vec::new();
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let Some(subcommand) = command.find_subcommand(name) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (cmd, matches) in [(&command, &matches), (subcommand, sub)] {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            let Ok(Some(value)) = matches.try_get_one::<String>(id) else {
                continue;
            };
            if let Err(why) = check_value(id, value, name) {
                found.push(format!("{}: {why}", describe(arg)));
            }
        }
    }
    found.extend(secret_problems(name));
    found.extend(cross_problems(sub));
    // A global flag is seen on the command and on its subcommand: say it once.
    let mut seen = std::collections::HashSet::new();
    found.retain(|problem| seen.insert(problem.clone()));
    found
}

/// The secrets the command reads, each from its variable or `_FILE`.
fn secret_problems(command: &str) -> Vec<String> {
    let uses_database = matches!(
        command,
        "serve" | "worker" | "migrate" | "outbox" | "inbound"
    );
    let serves = matches!(command, "serve" | "worker");
    let mut found = Vec::new();
    for name in SECRETS {
        let wanted = match *name {
            "DATABASE_URL" => uses_database,
            _ => serves,
        };
        if !wanted {
            continue;
        }
        match secret(name) {
            Err(why) => found.push(why),
            Ok(Some(url)) if *name == "DATABASE_URL" => {
                if let Err(why) = check_database_url(&url) {
                    found.push(format!("DATABASE_URL: {why}"));
                }
            }
            Ok(_) => {}
        }
    }
    found
}

/// Settings that are fine alone but not together.
fn cross_problems(matches: &clap::ArgMatches) -> Vec<String> {
    let duration = |id: &str| {
        matches
            .try_get_one::<String>(id)
            .ok()
            .flatten()
            .and_then(|v| parse_duration(v).ok())
    };
    match (duration("retry_base"), duration("retry_max_delay")) {
        (Some(base), Some(max)) if base > max => vec![format!(
            "BRIDGE_RETRY_BASE ({}) is longer than BRIDGE_RETRY_MAX_DELAY ({})",
            self::duration(base),
            self::duration(max)
        )],
        _ => Vec::new(),
    }
}

/// The same command with every value read as text, so no single bad value stops parsing.
fn as_strings(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut command = command.mut_args(|arg| {
        if arg.get_action().takes_values() {
            arg.value_parser(clap::builder::ValueParser::string())
        } else {
            arg
        }
    });
    for name in names {
        command = command.mut_subcommand(name, as_strings);
    }
    command
}

/// `BRIDGE_RETRY_BASE (--retry-base)`: the names an operator can search for.
fn describe(arg: &clap::Arg) -> String {
    let flag = arg.get_long().map(|l| format!("--{l}"));
    match (arg.get_env().and_then(|e| e.to_str()), flag) {
        (Some(env), Some(flag)) => format!("{env} ({flag})"),
        (Some(env), None) => env.to_owned(),
        (None, Some(flag)) => flag,
        (None, None) => arg.get_id().to_string(),
    }
}

/// Checks one setting's text the way it will be used.
pub(super) fn check_value(id: &str, value: &str, command: &str) -> Result<(), String> {
    if let Some((_, bound)) = BOUNDS.iter().find(|(name, _)| *name == id) {
        return bound.check(value);
    }
    match id {
        "mappings_dir" if command == "serve" => std::fs::read_dir(value)
            .map(|_| ())
            .map_err(|e| format!("cannot read the folder `{value}`: {e}")),
        "listen" => check_listen(value),
        "worker_listen" => match value.trim() {
            "" | "off" | "OFF" | "Off" => Ok(()),
            address => check_listen(address),
        },
        "api_key_file" if !value.is_empty() => {
            super::read_secret_file("WEBENGAGE_API_KEY_FILE", std::path::Path::new(value))
                .map(|_| ())
        }
        "data_center" => DataCenter::from_str(value, false)
            .map(|_| ())
            .map_err(|_| format!("`{value}` is not a data center: use global, india, ksa or eug")),
        "base_url" => check_base_url(value),
        "bulk" | "coalesce_users" => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("`{value}` is not true or false")),
        },
        "log_format" => LogFormat::from_str(value, false)
            .map(|_| ())
            .map_err(|_| format!("`{value}` is not a log format: use text or json")),
        _ => Ok(()),
    }
}

/// Parsed exactly as the pool will parse it; the message never repeats the URL, which
/// may hold a password.
fn check_database_url(value: &str) -> Result<(), String> {
    use std::str::FromStr;
    let url = url::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "the scheme must be postgres:// or postgresql://, not {}://",
            url.scheme()
        ));
    }
    sqlx::postgres::PgConnectOptions::from_str(value)
        .map(|_| ())
        .map_err(|e| format!("not a usable Postgres URL: {e}"))
}

fn check_listen(value: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    match value.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(()),
        _ => Err(format!(
            "`{value}` is not an address like 127.0.0.1:8080 or 0.0.0.0:8080"
        )),
    }
}

fn check_base_url(value: &str) -> Result<(), String> {
    // docker compose passes unset variables as empty strings: that means "not set".
    if value.trim().is_empty() {
        return Ok(());
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        _ => Err(format!("`{value}` is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One below, at, and one above each end of every bound: accepted exactly within.
    #[test]
    fn every_bounded_setting_accepts_its_range_and_refuses_past_it() {
        for (id, bound) in BOUNDS {
            let (below, min, max, above) = match *bound {
                Bound::Duration { min, max } => {
                    let ms = |d: Duration| format!("{}ms", d.as_millis());
                    (
                        ms(min - Duration::from_millis(1)),
                        ms(min),
                        ms(max),
                        ms(max + Duration::from_millis(1)),
                    )
                }
                Bound::Size { min, max } => (
                    (min - 1).to_string(),
                    min.to_string(),
                    max.to_string(),
                    (max + 1).to_string(),
                ),
                Bound::Count { min, max } => (
                    // Below zero is not a whole number at all: refused as well.
                    min.checked_sub(1)
                        .map_or("-1".to_owned(), |n| n.to_string()),
                    min.to_string(),
                    max.to_string(),
                    (max + 1).to_string(),
                ),
            };
            for ok in [&min, &max] {
                assert_eq!(check_value(id, ok, "serve"), Ok(()), "{id}={ok}");
            }
            for bad in [&below, &above] {
                let why = check_value(id, bad, "serve").expect_err(&format!("{id}={bad}"));
                assert!(why.contains(&bound.range()), "{id}={bad}: {why}");
            }
        }
    }

    #[test]
    fn absurd_values_are_refused_not_overflowed() {
        for (id, value) in [
            ("retry_base", "20000y"),
            ("retry_max_delay", "584542046090626y"),
            ("retention", "99999999999999999999s"),
            ("max_body", "18446744073709551615"),
            ("max_body", "18446744073709551616"),
            ("max_body", "17179869184GiB"),
            ("concurrency", "18446744073709551616"),
            ("limit_users_per_min", "-1"),
            ("http_workers", "0"),
        ] {
            assert!(
                check_value(id, value, "serve").is_err(),
                "{id}={value} accepted"
            );
        }
    }

    #[test]
    fn ranges_read_as_the_readme_writes_them() {
        let range = |id: &str| BOUNDS.iter().find(|(n, _)| *n == id).unwrap().1.range();
        assert_eq!(range("max_body"), "1KiB..=256MiB");
        assert_eq!(range("retry_base"), "10ms..=1h");
        assert_eq!(range("retention"), "1h..=3650d");
    }
}
