//! Settings from flags and environment variables (each flag also reads the variable
//! named in docs/configuration.md). Secrets are read from the environment
//! or a `NAME_FILE` file only, never from flags, which any user sees in `ps`.
//! `check` finds every problem at start (exit 2).

mod check;
mod secrets;

pub use check::{BOUNDS, Bound, problems};
pub use secrets::{SECRETS, SECRETS_HELP, read_secret_file, secret};

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/webengage_bridge";

/// Everything `serve` and `worker` need.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub mappings: MappingSettings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub webengage: WebEngageSettings,
    #[command(flatten)]
    pub delivery: DeliverySettings,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` or `DATABASE_URL_FILE` (it may hold a password: no flag).
    #[arg(skip = secret("DATABASE_URL").ok().flatten().unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct MappingSettings {
    /// Folder of mapping files; reloaded on change and on SIGHUP.
    #[arg(
        long = "mappings-dir",
        env = "BRIDGE_MAPPINGS_DIR",
        default_value = "mappings"
    )]
    pub mappings_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Largest webhook body accepted (e.g. 5MiB, 512KiB, 1000000).
    #[arg(long, env = "BRIDGE_MAX_BODY", default_value = "5MiB", value_parser = parse_byte_size)]
    pub max_body: usize,
    /// Webhook body bytes all requests together may hold while they are read and
    /// processed; past it a request gets 503 with Retry-After. 1MiB to 16GiB, and never
    /// less than BRIDGE_MAX_BODY (a smaller value counts as BRIDGE_MAX_BODY).
    #[arg(long, env = "BRIDGE_MAX_INFLIGHT_BYTES", default_value = "64MiB", value_parser = parse_byte_size)]
    pub max_inflight_bytes: usize,
    /// How long a webhook body may take to arrive, from its headers on; then 408.
    /// 1s to 10m.
    #[arg(long, env = "BRIDGE_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Records one JSON or LeadSquared webhook request may carry; more is a 413, before
    /// any is mapped. 1 to 100000.
    #[arg(long, env = "BRIDGE_MAX_RECORDS", default_value_t = crate::source::DEFAULT_MAX_RECORDS)]
    pub max_records: usize,
    /// `BRIDGE_ADMIN_TOKEN` (or `_FILE`): the admin API and pages, read and write.
    /// Unset: the admin surface is off.
    #[arg(skip = secret("BRIDGE_ADMIN_TOKEN").ok().flatten().map(SecretString::from))]
    pub admin_token: Option<SecretString>,
    /// `BRIDGE_VIEWER_TOKEN` (or `_FILE`): read-only support access.
    #[arg(skip = secret("BRIDGE_VIEWER_TOKEN").ok().flatten().map(SecretString::from))]
    pub viewer_token: Option<SecretString>,
    /// Optional local durable spool that keeps accepting while Postgres is down.
    #[arg(long, env = "BRIDGE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// HTTP worker threads, each committing webhooks through its own group commit.
    /// Default: half the CPUs, at least one.
    #[arg(long, env = "BRIDGE_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
}

impl HttpSettings {
    /// Each worker commits its own batches: fewer workers make larger batches, which
    /// cost Postgres and the bridge less CPU per record. On 2 cores shared with
    /// Postgres, one worker accepted 7-25% more webhooks than two (BENCHMARKS.md,
    /// "Ingest"); the other half of the machine is Postgres'.
    pub fn workers(&self) -> usize {
        self.http_workers.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cpus / 2).max(1)
        })
    }
}

pub use crate::webengage::DataCenter;

#[derive(Debug, Clone, Args)]
pub struct WebEngageSettings {
    /// WebEngage account license code.
    #[arg(long, env = "WEBENGAGE_LICENSE_CODE")]
    pub license_code: Option<String>,
    /// `WEBENGAGE_API_KEY`: the REST API key (sent as Bearer). Never logged.
    #[arg(skip = secrets::env_only("WEBENGAGE_API_KEY").map(SecretString::from))]
    pub api_key: Option<SecretString>,
    /// A file holding the API key (its first line), read at start and again on SIGHUP,
    /// so a rotated key takes effect without a restart. Wins over WEBENGAGE_API_KEY.
    #[arg(long, env = "WEBENGAGE_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Data center, which picks the API host.
    #[arg(
        long,
        env = "WEBENGAGE_DATA_CENTER",
        value_enum,
        default_value = "global"
    )]
    pub data_center: DataCenter,
    /// Overrides the API host (tests, proxies).
    #[arg(long, env = "WEBENGAGE_BASE_URL")]
    pub base_url: Option<String>,
    /// Send due operations of one kind through the bulk endpoints, up to 25 a request.
    #[arg(long, env = "WEBENGAGE_BULK", default_value_t = true, action = clap::ArgAction::Set)]
    pub bulk: bool,
    #[arg(long, env = "WEBENGAGE_LIMIT_USERS_PER_MIN", default_value_t = 5000)]
    pub limit_users_per_min: u32,
    #[arg(long, env = "WEBENGAGE_LIMIT_EVENTS_PER_MIN", default_value_t = 5000)]
    pub limit_events_per_min: u32,
    /// Deprecated: sets both bulk quotas below, unless they are set themselves.
    #[arg(long, env = "WEBENGAGE_LIMIT_BULK_PER_MIN")]
    pub limit_bulk_per_min: Option<u32>,
    /// Calls per minute to bulk-users [default: 500].
    #[arg(long, env = "WEBENGAGE_LIMIT_BULK_USERS_PER_MIN")]
    pub limit_bulk_users_per_min: Option<u32>,
    /// Calls per minute to bulk-events [default: 500].
    #[arg(long, env = "WEBENGAGE_LIMIT_BULK_EVENTS_PER_MIN")]
    pub limit_bulk_events_per_min: Option<u32>,
    #[arg(
        long,
        env = "WEBENGAGE_LIMIT_TRANSACTION_PER_MIN",
        default_value_t = 100
    )]
    pub limit_transaction_per_min: u32,
}

/// WebEngage's documented quota of each bulk endpoint, calls per minute.
pub const BULK_PER_MIN: u32 = 500;

impl WebEngageSettings {
    /// The bulk-users quota: its own variable, else the deprecated shared one, else 500.
    pub fn bulk_users_per_min(&self) -> u32 {
        self.limit_bulk_users_per_min
            .or(self.limit_bulk_per_min)
            .unwrap_or(BULK_PER_MIN)
    }

    /// The bulk-events quota: its own variable, else the deprecated shared one, else 500.
    pub fn bulk_events_per_min(&self) -> u32 {
        self.limit_bulk_events_per_min
            .or(self.limit_bulk_per_min)
            .unwrap_or(BULK_PER_MIN)
    }

    /// The API host: `WEBENGAGE_BASE_URL` when set, else the data center's.
    pub fn base_url(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| self.data_center.api_host().to_owned())
            .trim_end_matches('/')
            .to_owned()
    }

    /// What the WebEngage client needs: the host and the credentials.
    pub fn account(&self) -> crate::webengage::client::Account {
        crate::webengage::client::Account {
            base_url: self.base_url(),
            license_code: self.license_code.clone(),
            api_key: self.api_key.clone(),
        }
    }

    /// Reads the key from `WEBENGAGE_API_KEY_FILE`, when set, into `api_key`.
    pub fn load_api_key_file(&mut self) -> Result<(), String> {
        // docker compose passes an unset variable as an empty string: that is unset.
        if let Some(path) = self
            .api_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            self.api_key = Some(read_api_key_file(path)?);
        }
        Ok(())
    }

    /// Both credentials are needed before anything can be sent.
    pub fn has_credentials(&self) -> bool {
        self.missing_credentials().is_empty()
    }

    /// The credentials that are not set, by variable name.
    pub fn missing_credentials(&self) -> Vec<&'static str> {
        use secrecy::ExposeSecret;
        // docker compose passes unset variables as empty strings: those count as unset.
        let mut missing = Vec::new();
        if self
            .license_code
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            missing.push("WEBENGAGE_LICENSE_CODE");
        }
        if self
            .api_key
            .as_ref()
            .is_none_or(|k| k.expose_secret().trim().is_empty())
        {
            missing.push("WEBENGAGE_API_KEY");
        }
        missing
    }

    /// Why delivery waits, naming exactly the variables that are missing; None when
    /// both are set.
    pub fn credentials_problem(&self) -> Option<String> {
        let missing = self.missing_credentials();
        let (names, verb) = match missing.as_slice() {
            [] => return None,
            [one] => ((*one).to_owned(), "is"),
            many => (many.join(" and "), "are"),
        };
        Some(format!(
            "{names} {verb} not set: webhooks are accepted and stored, delivery waits for {}",
            if missing.len() == 1 { "it" } else { "them" }
        ))
    }
}

#[derive(Debug, Clone, Args)]
pub struct DeliverySettings {
    /// WebEngage requests in flight at once.
    #[arg(long, env = "BRIDGE_WORKER_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// First retry delay.
    #[arg(long, env = "BRIDGE_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub retry_base: Duration,
    /// Longest delay between retries.
    #[arg(long, env = "BRIDGE_RETRY_MAX_DELAY", default_value = "1h", value_parser = parse_duration)]
    pub retry_max_delay: Duration,
    /// Age after which a failing row goes `dead`.
    #[arg(long, env = "BRIDGE_RETRY_MAX_AGE", default_value = "72h", value_parser = parse_duration)]
    pub retry_max_age: Duration,
    /// While delivery is paused by a 401/404, how often to try again.
    #[arg(long, env = "BRIDGE_PAUSE_PROBE", default_value = "30s", value_parser = parse_duration)]
    pub pause_probe: Duration,
    /// How long finished records are kept: outbox rows delivered, dead or cancelled
    /// (with their attempts), inbound records ignored, stale, failed or malformed, and
    /// inbound records whose outbox rows are all gone.
    #[arg(long, env = "BRIDGE_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,
    /// How long the audit log of support actions is kept.
    #[arg(long, env = "BRIDGE_AUDIT_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// The rate-limit window. WebEngage's quotas are per minute; shorter windows exist
    /// only so tests can see a quota bind within seconds.
    #[arg(long, env = "BRIDGE_RATE_WINDOW", default_value = "60s", value_parser = parse_duration, hide = true)]
    pub rate_window: Duration,
    /// Failed calls in a row (5xx, timeouts, connection errors) after which delivery
    /// stops and probes WebEngage with one row until it answers again; 0 turns it off.
    #[arg(long, env = "BRIDGE_BREAKER_THRESHOLD", default_value_t = 10)]
    pub breaker_threshold: usize,
    /// Merge a user's queued user updates into one record when they are sent.
    #[arg(long, env = "BRIDGE_COALESCE_USERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub coalesce_users: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors. The filter is `RUST_LOG` (default `info`).
    #[arg(
        long,
        env = "BRIDGE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// The `worker` command's own `/healthz`, `/readyz` and `/metrics`.
#[derive(Debug, Clone, Args)]
pub struct WorkerHttpSettings {
    /// Address of the worker's `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(
        long = "worker-listen",
        env = "BRIDGE_WORKER_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub worker_listen: String,
}

impl WorkerHttpSettings {
    /// The address to bind, or None when switched off (`off`, or empty as docker
    /// compose passes an unset variable).
    pub fn address(&self) -> Option<&str> {
        let value = self.worker_listen.trim();
        (!value.is_empty() && !value.eq_ignore_ascii_case("off")).then_some(value)
    }
}

/// The API key in `path`: its first line, trimmed. The error names the file, never
/// the content.
pub fn read_api_key_file(path: &std::path::Path) -> Result<SecretString, String> {
    read_secret_file("WEBENGAGE_API_KEY_FILE", path).map(SecretString::from)
}

/// A humantime duration: `2s`, `1h`, `72h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 2s, 1h or 30d: {e}"))
}

/// A byte size: `5MiB`, `512KiB`, `1MB`, or plain bytes.
pub fn parse_byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 5MiB, 512KiB or 1000000"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use B, KiB, MiB, KB, MB)"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_byte_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_byte_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert!(parse_byte_size("5 parsecs").is_err());
        assert!(parse_byte_size("0").is_err());
    }

    #[test]
    fn the_shared_bulk_quota_is_an_alias_for_both() {
        let parse = |args: &[&str]| {
            let cli = clap::Command::new("t");
            let cli = <WebEngageSettings as clap::Args>::augment_args(cli);
            let m = cli
                .try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
                .unwrap();
            let s = <WebEngageSettings as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
            (s.bulk_users_per_min(), s.bulk_events_per_min())
        };
        assert_eq!(parse(&[]), (500, 500));
        assert_eq!(parse(&["--limit-bulk-per-min", "40"]), (40, 40));
        assert_eq!(
            parse(&[
                "--limit-bulk-per-min",
                "40",
                "--limit-bulk-events-per-min",
                "7"
            ]),
            (40, 7)
        );
        assert_eq!(parse(&["--limit-bulk-users-per-min", "9"]), (9, 500));
    }

    #[test]
    fn durations_are_humantime() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn data_center_picks_host_and_base_url_overrides_it() {
        assert_eq!(DataCenter::India.api_host(), "https://api.in.webengage.com");
        let mut s = WebEngageSettings {
            license_code: None,
            api_key: None,
            api_key_file: None,
            data_center: DataCenter::Ksa,
            base_url: Some("http://127.0.0.1:9999/".into()),
            bulk: true,
            limit_users_per_min: 1,
            limit_events_per_min: 1,
            limit_bulk_per_min: None,
            limit_bulk_users_per_min: None,
            limit_bulk_events_per_min: None,
            limit_transaction_per_min: 1,
        };
        assert_eq!(s.base_url(), "http://127.0.0.1:9999");
        assert!(!s.has_credentials());
        assert_eq!(
            s.credentials_problem().unwrap(),
            "WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set: webhooks are accepted and stored, delivery waits for them"
        );
        s.license_code = Some("in~1".into());
        let only_key = s.credentials_problem().unwrap();
        assert!(
            only_key.starts_with("WEBENGAGE_API_KEY is not set"),
            "{only_key}"
        );
        s.api_key = Some("k".to_owned().into());
        assert_eq!(s.credentials_problem(), None);
        let local = WebEngageSettings {
            base_url: None,
            ..s.clone()
        };
        assert_eq!(local.base_url(), "https://api.ksa.webengage.com");
    }
}
