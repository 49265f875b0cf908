//! The one place that wires things: pool, migrations, mappings, HTTP server, worker.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::config::ServeSettings;
use crate::delivery;
use crate::http::health::HealthState;
use crate::http::probe::DatabaseProbe;
use crate::http::{self, AppState};
use crate::ingest::group_commit::{GroupCommit, GroupCommitConfig};
use crate::ingest::spool::Spool;
use crate::ingest::{Ingest, Registry};
use crate::store;
use crate::store::ready::Readiness;

/// A running service: the HTTP server and, unless disabled, the delivery worker.
pub struct Application {
    port: u16,
    server: Option<Server>,
    /// A `worker` process's `/healthz`, `/readyz` and `/metrics` (`BRIDGE_WORKER_LISTEN`).
    health_server: Option<(Server, u16)>,
    worker: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    pool: PgPool,
}

impl Application {
    /// Connects (creating the database when missing), migrates, loads the mappings and
    /// binds the listener. `with_http`/`with_worker` pick the halves to run.
    pub async fn build(
        settings: ServeSettings,
        with_http: bool,
        with_worker: bool,
    ) -> anyhow::Result<Self> {
        Self::build_with(settings, with_http, with_worker, None).await
    }

    /// `build`, and for a process without the HTTP side, `/healthz`, `/readyz` and
    /// `/metrics` on `health_listen` when given (`worker`: `BRIDGE_WORKER_LISTEN`).
    pub async fn build_with(
        mut settings: ServeSettings,
        with_http: bool,
        with_worker: bool,
        health_listen: Option<&str>,
    ) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        settings
            .webengage
            .load_api_key_file()
            .map_err(anyhow::Error::msg)?;
        let pool = store::connect_lazy(&settings.database.database_url)?;
        let shutdown = CancellationToken::new();
        let database = Arc::new(Readiness::default());
        // One attempt now, so a healthy start is ready when `build` returns; if Postgres
        // is down, keep retrying in the background instead of exiting.
        if let Err(e) = database.try_prepare(&pool).await {
            tracing::error!(error = %e, "Postgres is unavailable at start; webhooks get 503 until it is back, retrying");
            let (database, pool, shutdown) = (database.clone(), pool.clone(), shutdown.clone());
            tokio::spawn(async move { database.prepare_until_ready(&pool, &shutdown).await });
        }
        // Install the metrics recorder before anything counts.
        http::metrics::handle();
        let credentials_problem = settings.webengage.credentials_problem();
        let health = HealthState {
            probe: Arc::new(DatabaseProbe::new(pool.clone())),
            database: database.clone(),
            registry: None,
            credentials_problem: credentials_problem.clone(),
        };
        let (server, port) = if with_http {
            let registry = Arc::new(load_mappings(&settings)?);
            crate::ingest::watch::spawn_reloader(registry.clone(), shutdown.clone());
            let mut ingest = Ingest::new(
                GroupCommit::spawn(pool.clone(), GroupCommitConfig::default()),
                registry.clone(),
                None,
                settings.http.max_records,
            );
            ingest.spool = open_spool(&settings, &ingest, &shutdown)?;
            let health = HealthState {
                registry: Some(registry.clone()),
                ..health.clone()
            };
            let (server, port) =
                build_server(&settings, ingest, registry, database.clone(), health)?;
            (Some(server), port)
        } else {
            (None, 0)
        };
        let health_server = match health_listen.filter(|_| !with_http) {
            Some(address) => Some(build_health_server(address, health)?),
            None => None,
        };
        if let Some(problem) = &credentials_problem {
            tracing::warn!("{problem}");
        }
        let worker =
            with_worker.then(|| spawn_worker_when_ready(&settings, &pool, &database, &shutdown));
        Ok(Application {
            port,
            server,
            health_server,
            worker,
            shutdown,
            pool,
        })
    }

    /// The bound HTTP port (useful with `BRIDGE_LISTEN=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound port of the `/healthz`, `/readyz`, `/metrics` listener of a process
    /// without the HTTP side, when it has one.
    pub fn health_port(&self) -> Option<u16> {
        self.health_server.as_ref().map(|(_, port)| *port)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until SIGINT/SIGTERM: the server drains in-flight requests, then the worker stops.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        // Stopped below, after the worker, not by actix's own signal handling.
        let health_server = self.health_server.take().map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        match self.server.take() {
            Some(server) => server.await?,
            None => wait_for_signal().await,
        }
        self.shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
        if let Some(handle) = health_server {
            handle.stop(true).await;
        }
        Ok(())
    }
}

/// The worker starts once the database is prepared (at once on a healthy start).
fn spawn_worker_when_ready(
    settings: &ServeSettings,
    pool: &PgPool,
    database: &Arc<Readiness>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let (pool, database, shutdown) = (pool.clone(), database.clone(), shutdown.clone());
    let (webengage, delivery) = (settings.webengage.clone(), settings.delivery.clone());
    tokio::spawn(async move {
        if database.wait(&shutdown).await {
            delivery::worker::run(pool, webengage, delivery, shutdown).await;
        }
    })
}

/// Opens `BRIDGE_SPOOL_DIR` when set and starts replaying what it holds.
fn open_spool(
    settings: &ServeSettings,
    ingest: &Ingest,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Arc<Spool>>> {
    let Some(dir) = &settings.http.spool_dir else {
        return Ok(None);
    };
    let spool = Arc::new(
        Spool::open(dir).with_context(|| format!("opening BRIDGE_SPOOL_DIR={}", dir.display()))?,
    );
    crate::ingest::spool::spawn_replayer(spool.clone(), ingest.clone(), shutdown.clone());
    Ok(Some(spool))
}

fn load_mappings(settings: &ServeSettings) -> anyhow::Result<Registry> {
    let dir = &settings.mappings.mappings_dir;
    let registry = Registry::load(dir).map_err(|errors| {
        anyhow::anyhow!("the mappings in {} do not load:\n{errors}", dir.display())
    })?;
    let set = registry.current();
    tracing::info!(sources = ?set.source_ids().collect::<Vec<_>>(), dir = %dir.display(), "mappings loaded");
    for id in set.source_ids() {
        if set
            .get(id)
            .is_some_and(|m| crate::source::credentials::is_open(&m.auth))
        {
            tracing::warn!(
                source = id,
                "source accepts unauthenticated webhooks (`auth: none`); configure a secret before production"
            );
        }
    }
    Ok(registry)
}

fn build_server(
    settings: &ServeSettings,
    ingest: Ingest,
    registry: Arc<Registry>,
    database: Arc<Readiness>,
    health: HealthState,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(&settings.http.listen)
        .with_context(|| format!("binding BRIDGE_LISTEN={}", settings.http.listen))?;
    let port = listener.local_addr()?.port();
    let shared = AppState {
        pool: ingest.pool().clone(),
        ingest,
        registry,
        database,
        webhooks: http::webhooks::BodyLimits::new(
            settings.http.max_body,
            settings.http.body_timeout,
            settings.http.max_inflight_bytes,
        ),
        has_credentials: settings.webengage.has_credentials(),
        credentials_problem: settings.webengage.credentials_problem(),
        admin: http::admin::AdminTokens::new(
            settings.http.admin_token.clone(),
            settings.http.viewer_token.clone(),
        ),
    };
    let server = HttpServer::new(move || {
        // The factory runs on each HTTP worker's thread: each worker commits through its
        // own group commit, so a request and the commit that answers it never wake
        // another thread (BENCHMARKS.md, "Ingest").
        let mut state = shared.clone();
        state.ingest.committer =
            GroupCommit::spawn(state.pool.clone(), GroupCommitConfig::default());
        App::new()
            // No answer may be sniffed into another type than it declares.
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            // Every error status has a JSON body, those actix writes itself too.
            .wrap(ErrorHandlers::new().default_handler(http::error::json_error_body))
            .wrap(TracingLogger::<http::request_span::RedactedRootSpan>::new())
            .app_data(web::Data::new(state))
            .app_data(web::Data::new(health.clone()))
            .configure(http::routes)
    })
    .workers(settings.http.workers())
    .listen(listener)?
    .shutdown_timeout(30)
    .run();
    tracing::info!(address = %settings.http.listen, port, "listening");
    Ok((server, port))
}

/// `/healthz`, `/readyz` and `/metrics` alone, for a process without the HTTP side.
fn build_health_server(address: &str, health: HealthState) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(address).with_context(|| {
        format!("binding BRIDGE_WORKER_LISTEN={address} (set another address, or `off`)")
    })?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(ErrorHandlers::new().default_handler(http::error::json_error_body))
            .app_data(web::Data::new(health.clone()))
            .configure(http::health_routes)
            .default_service(web::to(http::error::no_route))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    tracing::info!(address, port, "worker health and metrics listening");
    Ok((server, port))
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
