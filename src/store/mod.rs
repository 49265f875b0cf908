//! Every SQL statement of the service lives under this module.
//!
//! `inbound` (raw records and the ingest transaction), `outbox` (claim, settle, support
//! queries), `attempts` (the history of each delivery), `destination` (paused or running),
//! `status` (the typed statuses and kinds the tables hold), `storable` (CRM text made
//! storable, and data errors told from outages).

pub mod attempts;
pub mod attribute_types;
pub mod backlog;
pub mod columns;
pub mod console;
pub mod destination;
pub mod imports;
pub mod inbound;
pub mod jobs;
pub mod lifecycle;
pub mod outbox;
pub mod rate_windows;
pub mod ready;
pub mod remap;
pub mod sessions;
pub mod settle;
pub mod stats;
pub mod status;
pub mod storable;
pub mod support;
mod versions;

pub use status::{InboundStatus, OutboxStatus};

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

/// How long a pool waits for a connection before a query fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the database cannot be used. Messages name the host and the database, never the
/// URL (it may hold a password), and give the cause once.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL is not a usable Postgres URL: {0}")]
    Url(String),
    #[error("cannot reach Postgres at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error(
        "the database `{database}` does not exist on {address}; `webengage-bridge migrate` (or `serve`, `worker`) creates it"
    )]
    Missing { database: String, address: String },
    #[error("Postgres at {address} refused database `{database}`: {reason}")]
    Refused {
        database: String,
        address: String,
        reason: String,
    },
    #[error("applying the migrations to `{database}` on {address}: {reason}")]
    Migrate {
        database: String,
        address: String,
        reason: String,
    },
}

/// Opens a pool to an existing database (the support commands): a missing database is
/// an error naming it, never created.
pub async fn connect(database_url: &str) -> Result<PgPool, ConnectError> {
    let options = connect_options(database_url)?;
    let conn = options
        .connect()
        .await
        .map_err(|e| connect_error(&options, e))?;
    let _ = conn.close().await;
    Ok(pool_options().connect_lazy_with(options))
}

/// Opens a pool, creating the database first when it is missing (`migrate`; `serve`
/// and `worker` create it through `ready::Readiness`).
pub async fn connect_creating(database_url: &str) -> Result<PgPool, ConnectError> {
    let options = connect_options(database_url)?;
    ensure_database(&options).await?;
    connect(database_url).await
}

/// A pool that connects on first use: the service starts even while Postgres is down.
pub fn connect_lazy(database_url: &str) -> Result<PgPool, ConnectError> {
    let options = connect_options(database_url)?;
    Ok(pool_options().connect_lazy_with(options))
}

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// The connection options of `database_url`. A database on this machine is reached
/// without TLS unless the URL (`sslmode=`) or `PGSSLMODE` asks for it: on a loopback
/// address or a Unix socket nothing leaves the machine, so TLS protects nothing, and
/// (with libpq's default `prefer`) it encrypts every row on both ends of the ingest path.
pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, ConnectError> {
    let options = PgConnectOptions::from_str(database_url)
        .map_err(|e| ConnectError::Url(error_reason(&e)))?;
    let asks_for_tls = database_url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("sslmode=")))
        || std::env::var_os("PGSSLMODE").is_some();
    let local = options.get_socket().is_some() || is_loopback(options.get_host());
    Ok(if local && !asks_for_tls {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host:port`, or the socket path, as an operator would look for it.
pub fn address(options: &PgConnectOptions) -> String {
    let port = options.get_port();
    let socket = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None if options.get_host().starts_with('/') => options.get_host().to_owned(),
        None => return format!("{}:{port}", options.get_host()),
    };
    // sqlx takes a folder and adds the file name, as libpq does.
    if socket.contains(".s.PGSQL.") {
        format!("socket {socket}")
    } else {
        format!("socket {}/.s.PGSQL.{port}", socket.trim_end_matches('/'))
    }
}

fn database_name(options: &PgConnectOptions) -> String {
    options
        .get_database()
        .or(options.get_username().into())
        .unwrap_or("postgres")
        .to_owned()
}

/// The cause of `e`, once (sqlx's own message repeats its source's).
fn error_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        sqlx::Error::PoolTimedOut => {
            format!("no connection within {} s", ACQUIRE_TIMEOUT.as_secs())
        }
        other => other.to_string(),
    }
}

/// `e`, met while connecting with `options`, as an error naming host and database.
pub fn connect_error(options: &PgConnectOptions, e: sqlx::Error) -> ConnectError {
    let (database, address) = (database_name(options), address(options));
    let reason = error_reason(&e);
    match &e {
        // invalid_catalog_name: the database does not exist.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
            ConnectError::Missing { database, address }
        }
        sqlx::Error::Database(_) => ConnectError::Refused {
            database,
            address,
            reason,
        },
        _ => ConnectError::Unreachable { address, reason },
    }
}

/// Creates the database named in `options` when it does not exist yet.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), ConnectError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let maintenance = options.clone().database("postgres");
    let failed = |e| connect_error(&maintenance, e);
    let mut admin = maintenance.connect().await.map_err(failed)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .map_err(failed)?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => {
                tracing::info!(database = %name, address = %address(options), "created database")
            }
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(failed(e)),
        }
    }
    let _ = admin.close().await;
    Ok(())
}

/// Creates the database when missing and applies the migrations (`serve`, `worker`).
pub async fn prepare(pool: &PgPool) -> Result<(), ConnectError> {
    let options = pool.connect_options();
    ensure_database(&options).await?;
    migrate(pool).await.map_err(|e| match e {
        MigrateError::Execute(e) => connect_error(&options, e),
        other => ConnectError::Migrate {
            database: database_name(&options),
            address: address(&options),
            reason: other.to_string(),
        },
    })
}

/// Applies the migrations in `migrations/` (embedded at build time).
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}

/// True when the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> String {
        format!("{:?}", connect_options(url).expect("parses"))
    }

    #[test]
    fn connection_errors_name_the_host_and_the_database() {
        let options = connect_options("postgres://u:secret@db.internal:6543/crm").unwrap();
        let refused = connect_error(
            &options,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        )
        .to_string();
        assert!(refused.contains("db.internal:6543"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        let socket = connect_options("postgres:///crm?host=/run/postgresql").unwrap();
        assert_eq!(address(&socket), "socket /run/postgresql/.s.PGSQL.5432");
    }

    #[test]
    fn a_local_database_is_reached_without_tls_unless_asked() {
        // PGSSLMODE would change the answers; these tests assume it is unset, as in CI.
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        for local in [
            "postgres://postgres@localhost:5432/db",
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres://postgres@[::1]:5432/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            assert!(
                tls(local).contains("ssl_mode: Disable"),
                "{local}: {}",
                tls(local)
            );
        }
        for kept in [
            "postgres://postgres@db.internal:5432/db",
            "postgres://postgres@10.0.0.5:5432/db",
            "postgres://postgres@127.0.0.1:5432/db?sslmode=require",
            "postgres://postgres@localhost/db?application_name=x&sslmode=prefer",
        ] {
            assert!(
                !tls(kept).contains("ssl_mode: Disable"),
                "{kept}: {}",
                tls(kept)
            );
        }
    }
}
