//! Every SQL statement of the service lives under this module.
//!
//! `inbound` (raw records and the ingest transaction), `outbox` (claim, settle, support
//! queries), `attempts` (the history of each delivery), `destination` (paused or running),
//! `status` (the typed statuses and kinds the tables hold), `storable` (CRM text made
//! storable, and data errors told from outages).

pub mod attempts;
pub mod attribute_types;
pub mod backlog;
pub mod console;
pub mod destination;
pub mod inbound;
pub mod jobs;
pub mod lifecycle;
pub mod outbox;
pub mod rate_windows;
pub mod ready;
pub mod sessions;
pub mod settle;
pub mod stats;
pub mod status;
pub mod storable;
pub mod support;

pub use status::{InboundStatus, OutboxStatus};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Opens a pool to `database_url`, creating the database first when it is missing.
pub async fn connect(database_url: &str) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(database_url)?;
    ensure_database(&options).await?;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// A pool that connects on first use: the service starts even while Postgres is down.
pub fn connect_lazy(database_url: &str) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(database_url)?;
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// The connection options of `database_url`. A database on this machine is reached
/// without TLS unless the URL (`sslmode=`) or `PGSSLMODE` asks for it: on a loopback
/// address or a Unix socket nothing leaves the machine, so TLS protects nothing, and
/// (with libpq's default `prefer`) it encrypts every row on both ends of the ingest path.
pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?;
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

/// Creates the database named in `options` when it does not exist yet.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Applies the migrations in `migrations/` (embedded at build time).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
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
