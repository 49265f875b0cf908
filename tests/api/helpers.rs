//! Test harness: every test gets its own fresh database on the real Postgres.

pub mod bridge;
pub mod delivery;
pub mod proxy;
pub mod tools;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use webengage_bridge::config::{
    DataCenter, DatabaseSettings, DeliverySettings, HttpSettings, MappingSettings, ServeSettings,
    WebEngageSettings,
};
use webengage_bridge::startup::Application;
use wiremock::MockServer;

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
        // reqwest has no TLS provider of its own (Cargo.toml): any client needs it.
        webengage_bridge::tls::install_crypto_provider();
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

/// The database goes with the test. A failed test's database is kept to look at
/// (`.ci/run` drops every `wb_test_%` database before it starts).
impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        if std::thread::panicking() {
            eprintln!("keeping the database of a failed test: {name}");
            return;
        }
        // Drop cannot await, and the test's runtime may be shutting down: a thread with
        // a runtime of its own. FORCE ends the connections the test left open.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_DATABASE_URL");
                let mut conn = admin.connect().await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

pub const LICENSE: &str = "in~test-license";
pub const API_KEY: &str = "we-secret-api-key-123";

/// The project's shipped example mappings.
pub fn example_mappings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// A copy of the example mappings in `dir` (a test may edit it): `dir/mappings`.
pub fn copy_example_mappings(dir: &Path) -> PathBuf {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(example_mappings())
        .arg(dir)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying the example mappings");
    dir.join("mappings")
}

/// A stand-in for WebEngage that answers every POST 201 `queued`.
pub async fn queued_webengage() -> MockServer {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"response": {"status": "queued"}})),
        )
        .mount(&server)
        .await;
    server
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/tests/fixtures")
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
    /// `BRIDGE_BODY_TIMEOUT`.
    pub body_timeout: Duration,
    /// `BRIDGE_MAX_INFLIGHT_BYTES` (never below `max_body`).
    pub max_inflight_bytes: usize,
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
            body_timeout: Duration::from_secs(10),
            max_inflight_bytes: 64 * 1024 * 1024,
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
            max_inflight_bytes: options.max_inflight_bytes,
            body_timeout: options.body_timeout,
            max_records: 1000,
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
            limit_bulk_per_min: None,
            limit_bulk_users_per_min: None,
            limit_bulk_events_per_min: None,
            limit_transaction_per_min: 100,
        },
        delivery: DeliverySettings {
            concurrency: 4,
            retry_base: Duration::from_millis(50),
            retry_max_delay: Duration::from_millis(500),
            retry_max_age: Duration::from_secs(3600),
            pause_probe: Duration::from_millis(300),
            retention: Duration::from_secs(30 * 86400),
            audit_retention: Duration::from_secs(365 * 86400),
            rate_window: Duration::from_secs(60),
            breaker_threshold: 10,
            coalesce_users: true,
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
    /// A scrape of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

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

#[tokio::test]
async fn a_test_database_is_migrated_and_dropped_after_the_test() {
    let db = TestDb::new().await;
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .expect("the schema is there");
    assert_eq!(outbox, 0);
    let name = db.name.clone();
    drop(db);
    let mut conn = PgConnectOptions::from_str(&admin_url())
        .expect("TEST_DATABASE_URL")
        .connect()
        .await
        .expect("connect to the test Postgres");
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("pg_database");
    assert!(!left, "{name} was left behind");
}

/// Makes Postgres refuse (SQLSTATE 22023, "the test refuses this row") every inbound row
/// whose payload contains `marker`; rows stored as `failed` too when `even_failed`.
pub async fn refuse_inbound_rows(pool: &PgPool, marker: &str, even_failed: bool) {
    let failed_too = if even_failed {
        ""
    } else {
        " AND NEW.status <> 'failed'"
    };
    sqlx::raw_sql(&format!(
        r#"CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.payload::text LIKE '%{marker}%'{failed_too} THEN
               RAISE EXCEPTION 'the test refuses this row' USING ERRCODE = '22023';
             END IF;
             RETURN NEW;
           END $$;
           CREATE TRIGGER refuse_marked BEFORE INSERT ON inbound_records
             FOR EACH ROW EXECUTE FUNCTION refuse_marked();"#
    ))
    .execute(pool)
    .await
    .unwrap();
}
