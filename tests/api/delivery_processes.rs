//! The real binary as separate `worker` processes on one database: the shared quota,
//! and key rotation on SIGHUP.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const LICENSE: &str = "lic";

/// A `webengage-bridge worker` process, killed when dropped.
struct Worker(Child);

impl Worker {
    fn start(db_url: &str, webengage: &str, env: &[(&str, &str)]) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_webengage-bridge"))
            .arg("worker")
            .env_clear()
            .env("DATABASE_URL", db_url)
            .env("WEBENGAGE_BASE_URL", webengage)
            .env("WEBENGAGE_LICENSE_CODE", LICENSE)
            .env("RUST_LOG", "error")
            // Several workers on one host: none binds the default health address.
            .env("BRIDGE_WORKER_LISTEN", "off")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        Worker(child)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn insert_users(pool: &PgPool, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
        let users: Vec<String> = chunk.iter().map(|i| format!("u{i}")).collect();
        sqlx::query(
            "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
             SELECT r, 'test', 'rule', 'user', u, jsonb_build_object('userId', u)
             FROM unnest($1::uuid[], $2::text[]) AS t(r, u)",
        )
        .bind(&ids)
        .bind(&users)
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn wait_for(pool: &PgPool, sql: &str, expected: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = count(pool, sql).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{sql}` stayed at {n}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// When a request arrived (since the epoch) and the users it carried.
type Call = (Duration, Vec<String>);

/// Answers `queued` and notes every call.
#[derive(Clone, Default)]
struct Stamped(Arc<Mutex<Vec<Call>>>);

impl Respond for Stamped {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let body: Value = request.body_json().unwrap_or_default();
        let users = body["users"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|u| u["userId"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().push((at, users));
        ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
    }
}

#[tokio::test]
async fn three_worker_processes_deliver_each_row_once_within_one_shared_quota() {
    // Two-second windows: a loaded machine may take a while between taking a permit
    // and the call arriving, and the limiter keeps a twentieth of each window as guard.
    const QUOTA: usize = 10;
    const WINDOW_MS: u128 = 2000;
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let stamped = Stamped::default();
    Mock::given(method("POST"))
        .respond_with(stamped.clone())
        .mount(&server)
        .await;
    insert_users(&db.pool, 1000).await;

    let quota = QUOTA.to_string();
    let env = [
        ("WEBENGAGE_API_KEY", "key"),
        ("WEBENGAGE_LIMIT_BULK_PER_MIN", quota.as_str()),
        ("BRIDGE_RATE_WINDOW", "2s"),
        ("BRIDGE_WORKER_CONCURRENCY", "4"),
    ];
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(&db.url, &server.uri(), &env))
        .collect();
    wait_for(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
        1000,
        Duration::from_secs(60),
    )
    .await;
    drop(workers);

    let calls = stamped.0.lock().unwrap().clone();
    let mut per_window: BTreeMap<u128, usize> = BTreeMap::new();
    let mut per_user: HashMap<String, usize> = HashMap::new();
    for (at, users) in &calls {
        *per_window.entry(at.as_millis() / WINDOW_MS).or_default() += 1;
        assert!(users.len() <= 25);
        for user in users {
            *per_user.entry(user.clone()).or_default() += 1;
        }
    }
    assert_eq!(per_user.len(), 1000, "every row reached WebEngage");
    assert!(per_user.values().all(|n| *n == 1), "each row exactly once");
    let busiest = per_window.values().copied().max().unwrap_or(0);
    assert!(
        busiest <= QUOTA,
        "a window had {busiest} calls, over the quota of {QUOTA}: {per_window:?}"
    );
    // 1000 rows need at least 40 bulk calls: the quota bound for several windows.
    assert!(per_window.len() >= 40 / QUOTA, "{per_window:?}");
}

#[tokio::test]
async fn sighup_reads_a_rotated_key_and_probes_at_once() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer new-key"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("webengage.key");
    std::fs::write(&key_file, "old-key\n").unwrap();
    insert_users(&db.pool, 1).await;

    let env = [
        ("WEBENGAGE_API_KEY_FILE", path_str(&key_file)),
        // Without SIGHUP the next probe would be an hour away.
        ("BRIDGE_PAUSE_PROBE", "1h"),
    ];
    let worker = Worker::start(&db.url, &server.uri(), &env);
    let paused = "SELECT count(*) FROM destination_state WHERE paused_reason IS NOT NULL";
    wait_for(&db.pool, paused, 1, Duration::from_secs(20)).await;

    std::fs::write(&key_file, "new-key\n").unwrap();
    worker.signal("HUP");
    wait_for(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
        1,
        Duration::from_secs(20),
    )
    .await;
    wait_for(&db.pool, paused, 0, Duration::from_secs(5)).await;
    drop(worker);
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
