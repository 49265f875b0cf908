//! The one place that wires things: pool, migrations, mappings, HTTP server, worker.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::config::ServeSettings;
use crate::delivery;
use crate::http::{self, AppState};
use crate::mapping::Registry;
use crate::store;

/// A running service: the HTTP server and, unless disabled, the delivery worker.
pub struct Application {
    port: u16,
    server: Option<Server>,
    worker: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    pool: PgPool,
}

impl Application {
    /// Connects (creating the database when missing), migrates, loads the mappings and
    /// binds the listener. `with_http`/`with_worker` pick the halves to run.
    pub async fn build(
        mut settings: ServeSettings,
        with_http: bool,
        with_worker: bool,
    ) -> anyhow::Result<Self> {
        settings
            .webengage
            .load_api_key_file()
            .map_err(anyhow::Error::msg)?;
        let pool = store::connect(&settings.database.database_url)
            .await
            .context("connecting to Postgres (DATABASE_URL)")?;
        store::migrate(&pool).await.context("applying migrations")?;
        let shutdown = CancellationToken::new();
        let (server, port) = if with_http {
            let registry = Arc::new(load_mappings(&settings)?);
            crate::mapping::watch::spawn_reloader(registry.clone(), shutdown.clone());
            let (server, port) = build_server(&settings, pool.clone(), registry)?;
            (Some(server), port)
        } else {
            (None, 0)
        };
        if !settings.webengage.has_credentials() {
            tracing::warn!(
                "WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set: webhooks are accepted and stored, delivery waits for them"
            );
        }
        let worker = with_worker.then(|| {
            delivery::spawn_worker(
                pool.clone(),
                settings.webengage.clone(),
                settings.delivery.clone(),
                shutdown.clone(),
            )
        });
        Ok(Application {
            port,
            server,
            worker,
            shutdown,
            pool,
        })
    }

    /// The bound HTTP port (useful with `BRIDGE_LISTEN=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until SIGINT/SIGTERM: the server drains in-flight requests, then the worker stops.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.await?,
            None => wait_for_signal().await,
        }
        self.shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
        Ok(())
    }
}

fn load_mappings(settings: &ServeSettings) -> anyhow::Result<Registry> {
    let dir = &settings.mappings.mappings_dir;
    let registry = Registry::load(dir).map_err(|errors| {
        anyhow::anyhow!("the mappings in {} do not load:\n{errors}", dir.display())
    })?;
    let set = registry.current();
    tracing::info!(sources = ?set.source_ids().collect::<Vec<_>>(), dir = %dir.display(), "mappings loaded");
    Ok(registry)
}

fn build_server(
    settings: &ServeSettings,
    pool: PgPool,
    registry: Arc<Registry>,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(&settings.http.listen)
        .with_context(|| format!("binding BRIDGE_LISTEN={}", settings.http.listen))?;
    let port = listener.local_addr()?.port();
    // Install the metrics recorder before the first request counts anything.
    http::metrics::handle();
    let state = web::Data::new(AppState {
        pool,
        registry,
        max_body: settings.http.max_body,
        has_credentials: settings.webengage.has_credentials(),
        admin: http::admin::AdminTokens::new(
            settings.http.admin_token.clone(),
            settings.http.viewer_token.clone(),
        ),
    });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .configure(http::routes)
    })
    .listen(listener)?
    .shutdown_timeout(30)
    .run();
    tracing::info!(address = %settings.http.listen, port, "listening");
    Ok((server, port))
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
