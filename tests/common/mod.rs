//! Test harness: every test gets its own fresh database on the real Postgres.
#![allow(dead_code)]

pub mod bridge;
pub mod proxy;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// The server tests create their databases on. Override with `TEST_DATABASE_URL`.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, migrated database that lives as long as the test.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_DATABASE_URL");
        let name = format!("wb_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.expect("connect to the test Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let options = admin.clone().database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .expect("connect to test database");
        webengage_bridge::store::migrate(&pool)
            .await
            .expect("migrations apply");
        TestDb { pool, name, url }
    }
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use webengage_bridge::config::{
    DataCenter, DatabaseSettings, DeliverySettings, HttpSettings, MappingSettings, ServeSettings,
    WebEngageSettings,
};
use webengage_bridge::startup::Application;
use wiremock::MockServer;

pub const LICENSE: &str = "in~test-license";
pub const API_KEY: &str = "we-secret-api-key-123";

/// The project's shipped example mappings.
pub fn example_mappings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running bridge on a random port, its own database, and a stand-in for WebEngage.
pub struct TestApp {
    pub address: String,
    pub db: TestDb,
    pub webengage: MockServer,
    pub http: reqwest::Client,
}

pub struct AppOptions {
    pub mappings_dir: PathBuf,
    pub with_worker: bool,
    pub credentials: bool,
    pub max_body: usize,
    pub admin_token: Option<String>,
    pub viewer_token: Option<String>,
    pub spool_dir: Option<PathBuf>,
}

pub const ADMIN_TOKEN: &str = "admin-token-5f1c";
pub const VIEWER_TOKEN: &str = "viewer-token-9a7e";

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            mappings_dir: example_mappings(),
            with_worker: true,
            credentials: true,
            max_body: 5 * 1024 * 1024,
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            viewer_token: Some(VIEWER_TOKEN.to_owned()),
            spool_dir: None,
        }
    }
}

pub fn settings(db_url: &str, webengage_url: &str, options: &AppOptions) -> ServeSettings {
    ServeSettings {
        database: DatabaseSettings {
            database_url: db_url.to_owned(),
        },
        mappings: MappingSettings {
            mappings_dir: options.mappings_dir.clone(),
        },
        http: HttpSettings {
            listen: "127.0.0.1:0".into(),
            max_body: options.max_body,
            admin_token: options.admin_token.clone().map(Into::into),
            viewer_token: options.viewer_token.clone().map(Into::into),
            spool_dir: options.spool_dir.clone(),
            http_workers: None,
        },
        webengage: WebEngageSettings {
            license_code: options.credentials.then(|| LICENSE.to_owned()),
            api_key: options.credentials.then(|| API_KEY.to_owned().into()),
            api_key_file: None,
            data_center: DataCenter::Global,
            base_url: Some(webengage_url.to_owned()),
            bulk: false,
            limit_users_per_min: 5000,
            limit_events_per_min: 5000,
            limit_bulk_per_min: 500,
            limit_transaction_per_min: 100,
        },
        delivery: DeliverySettings {
            concurrency: 4,
            retry_base: Duration::from_millis(50),
            retry_max_delay: Duration::from_millis(500),
            retry_max_age: Duration::from_secs(3600),
            pause_probe: Duration::from_millis(300),
            retention: Duration::from_secs(30 * 86400),
            rate_window: Duration::from_secs(60),
        },
    }
}

pub async fn spawn_app(options: AppOptions) -> TestApp {
    let db = TestDb::new().await;
    let url = db.url.clone();
    spawn_app_on(db, &url, options).await
}

/// Like `spawn_app`, with the app reaching the database through `db_url` (a proxy).
pub async fn spawn_app_on(db: TestDb, db_url: &str, options: AppOptions) -> TestApp {
    let webengage = MockServer::start().await;
    let app = Application::build(
        settings(db_url, &webengage.uri(), &options),
        true,
        options.with_worker,
    )
    .await
    .expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        db,
        webengage,
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    pub async fn post(&self, source: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/{source}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect(sql)
    }

    /// Polls until `sql` counts `expected`, failing after a generous deadline.
    pub async fn wait_for_count(&self, sql: &str, expected: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let n = self.count(sql).await;
            if n == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{sql}` stayed at {n}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Bodies WebEngage received on `path`, in arrival order.
    pub async fn received(&self, path: &str) -> Vec<(serde_json::Value, String)> {
        self.webengage
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == path)
            .map(|r| {
                let id = r
                    .headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (serde_json::from_slice(&r.body).expect("JSON body"), id)
            })
            .collect()
    }
}
