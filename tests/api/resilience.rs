//! Postgres unavailable: webhooks get 503 (Salesforce a SOAP fault), never a 2xx;
//! `/readyz` says why; the pool reconnects and the worker resumes without a restart;
//! a blink while a row is being settled does not make the worker send it again.
//! The database "goes away" behind a proxy this test owns, never the shared cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::proxy::PgProxy;
use crate::helpers::{AppOptions, TestApp, TestDb, fixture, settings, spawn_app_on};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webengage_bridge::delivery::spawn_worker;
use webengage_bridge::startup::Application;
use webengage_bridge::store;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn postgres_proxy() -> PgProxy {
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    PgProxy::start(target).await
}

/// A Salesforce Flow lead with its own id, so each post is a new record.
fn flow_lead(n: u32) -> Vec<u8> {
    let mut lead: Value = serde_json::from_slice(&fixture("sf_flow_lead.json")).unwrap();
    lead["Id"] = json!(format!("00Q5j00000Hk{n:06}"));
    lead["Email"] = json!(format!("lead{n}@example.com"));
    serde_json::to_vec(&lead).unwrap()
}

async fn accept_everything(webengage: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}})),
        )
        .mount(webengage)
        .await;
}

async fn readyz(app_address: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{app_address}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `/readyz` reads Postgres in the background: once it is back, the next checks see it.
async fn ready_within(app_address: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, detail) = readyz(app_address).await;
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} {limit:?} after Postgres came back: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts until the answer is 200 (the pool reconnects by itself), failing after a deadline.
async fn post_until_accepted(app: &TestApp, n: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app
            .post("salesforce-flow", "application/json", flow_lead(n))
            .await;
        if response.status() == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn database_outage_answers_503_then_recovers_without_restart() {
    let proxy = postgres_proxy().await;
    let db = TestDb::new().await;
    let url = proxy.url_for(&db.url);
    let app = spawn_app_on(db, &url, AppOptions::default()).await;
    accept_everything(&app.webengage).await;
    let first = app
        .post("salesforce-flow", "application/json", flow_lead(1))
        .await;
    assert_eq!(first.status(), 200);
    // Let the first lead settle before the outage: a settle cut off by an outage longer
    // than the settle retry (15 s) would leave its rows in flight until their lease
    // expires (90 s), which is not what this test is about (see the blink tests below).
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status <> 'delivered'", 0)
        .await;

    proxy.down();
    let refused = app
        .post("salesforce-flow", "application/json", flow_lead(2))
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let soap = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(soap.status(), 500);
    assert!(soap.text().await.unwrap().contains("Fault"));
    let lsq = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_lead_create.json"),
        )
        .await;
    assert_eq!(lsq.status(), 503, "without a spool, never a 2xx while down");
    let (status, detail) = readyz(&app.address).await;
    assert_eq!(status, 503);
    assert_eq!(detail["database"]["ok"], json!(false), "{detail}");
    assert!(
        detail["database"]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable")
    );

    proxy.up();
    post_until_accepted(&app, 2).await;
    ready_within(&app.address, Duration::from_secs(10)).await;
    // Both leads' rows reach WebEngage: the worker resumed by itself.
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status <> 'delivered'", 0)
        .await;
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 2);
}

#[tokio::test]
async fn serve_started_while_postgres_is_down_waits_for_it() {
    let proxy = postgres_proxy().await;
    proxy.down();
    // A database that does not exist yet: it is created once Postgres answers.
    let name = format!("wb_test_{}", uuid::Uuid::new_v4().simple());
    let direct = format!(
        "{}/{name}",
        crate::helpers::admin_url().rsplit_once('/').unwrap().0
    );
    let webengage = MockServer::start().await;
    accept_everything(&webengage).await;
    let app = Application::build(
        settings(
            &proxy.url_for(&direct),
            &webengage.uri(),
            &AppOptions::default(),
        ),
        true,
        true,
    )
    .await
    .expect("serve starts while Postgres is down");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let (status, detail) = readyz(&address).await;
    assert_eq!(status, 503, "{detail}");
    assert_eq!(detail["database"]["ok"], json!(false));
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{address}/webhooks/salesforce-flow"))
        .header("content-type", "application/json")
        .body(flow_lead(1))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);

    proxy.up();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while readyz(&address).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = client
        .post(format!("{address}/webhooks/salesforce-flow"))
        .header("content-type", "application/json")
        .body(flow_lead(1))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let pool = PgPool::connect(&direct).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let delivered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'delivered'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if delivered > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spool_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn leadsquared_is_spooled_while_postgres_is_down_and_replayed_once_back() {
    let proxy = postgres_proxy().await;
    let db = TestDb::new().await;
    let url = proxy.url_for(&db.url);
    let spool = tempfile::tempdir().unwrap();
    let app = spawn_app_on(
        db,
        &url,
        AppOptions {
            spool_dir: Some(spool.path().to_path_buf()),
            ..AppOptions::default()
        },
    )
    .await;
    accept_everything(&app.webengage).await;

    proxy.down();
    let lead = fixture("lsq_lead_create.json");
    let activity = fixture("lsq_activity.json");
    // The lead twice (a redelivery): replay must store it once.
    for body in [lead.clone(), activity, lead] {
        let response = app.post("leadsquared", "application/json", body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["Status"], json!("Success"));
        assert_eq!(answer["StatusReason"], json!("spooled"));
    }
    // Every format is spooled: a Flow callout does not retry on its own.
    let flow = app
        .post("salesforce-flow", "application/json", flow_lead(1))
        .await;
    assert_eq!(flow.status(), 200);
    let answer: Value = flow.json().await.unwrap();
    assert_eq!(answer["spooled"], json!(1), "{answer}");
    assert!(spool_files(spool.path()) > 0);

    proxy.up();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while spool_files(spool.path()) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spool was never replayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 3);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status <> 'delivered'", 0)
        .await;
    assert!(app.count("SELECT count(*) FROM outbox").await >= 2);
    // The activity came after the lead, and is stored after it.
    let sources: Vec<bool> = sqlx::query_scalar(
        "SELECT payload::jsonb ? 'ProspectActivityId' FROM inbound_records WHERE source = 'leadsquared' ORDER BY id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(sources, [false, true]);
}

/// WebEngage's answer to the first call, given only once the proxy to Postgres is cut:
/// the call succeeded, and the worker must now settle it while the database is away.
struct CutPostgresThenAccept(Arc<PgProxy>);

impl Respond for CutPostgresThenAccept {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.down();
        // A moment for the cut connections to close before the worker hears the answer.
        ResponseTemplate::new(201)
            .set_body_json(json!({"response": {"status": "queued"}}))
            .set_delay(Duration::from_millis(200))
    }
}

/// `rows` user rows (one user each) are due; a worker reaching Postgres through the
/// proxy claims them; WebEngage accepts the first call only after cutting the proxy,
/// which comes back 2 s later. Every row must end delivered within seconds (its lease is
/// 90 s), with one attempt recorded and exactly one call to WebEngage.
async fn postgres_blinks_while_settling(bulk: bool, rows: usize) {
    let proxy = Arc::new(postgres_proxy().await);
    let db = TestDb::new().await;
    let webengage = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(CutPostgresThenAccept(proxy.clone()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&webengage)
        .await;
    accept_everything(&webengage).await;
    let mut ids = Vec::new();
    for n in 0..rows {
        let user = format!("blink-{n}");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
             VALUES ($1, 'test', 'rule', 'user', $2, $3) RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(&user)
        .bind(json!({"userId": user, "firstName": "Blink"}))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }

    let serve = settings(&db.url, &webengage.uri(), &AppOptions::default());
    let mut webengage_settings = serve.webengage;
    webengage_settings.bulk = bulk;
    // The production pool (5 s acquire timeout), through the proxy.
    let pool = store::connect_lazy(&proxy.url_for(&db.url)).unwrap();
    let shutdown = CancellationToken::new();
    let worker = spawn_worker(pool, webengage_settings, serve.delivery, shutdown.clone());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while webengage.received_requests().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "WebEngage was never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_at = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.up();

    let open = "SELECT status::text FROM outbox WHERE id = ANY($1) AND status <> 'delivered'";
    loop {
        let left: Vec<String> = sqlx::query_scalar(open)
            .bind(&ids)
            .fetch_all(&db.pool)
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(15),
            "rows still {left:?} {:?} after the blink (their lease is 90 s)",
            cut_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    worker.await.unwrap();

    for id in &ids {
        let row = store::outbox::get(&db.pool, *id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.attempts), ("delivered", 1));
        let tries = store::attempts::list_for_outbox(&db.pool, *id)
            .await
            .unwrap();
        assert_eq!(
            tries.len(),
            1,
            "one attempt recorded for row {id}: {tries:?}"
        );
    }
    // Exactly one call per request id: nothing was sent again.
    let mut calls: HashMap<String, usize> = HashMap::new();
    for request in webengage.received_requests().await.unwrap() {
        let id = request.headers["x-request-id"].to_str().unwrap().to_owned();
        *calls.entry(id).or_default() += 1;
    }
    assert!(calls.values().all(|&n| n == 1), "resent: {calls:?}");
    let expected_calls = if bulk { 1 } else { rows };
    assert_eq!(calls.len(), expected_calls, "calls: {calls:?}");
}

#[tokio::test]
async fn a_postgres_blink_while_settling_a_row_does_not_send_it_again() {
    postgres_blinks_while_settling(false, 1).await;
}

#[tokio::test]
async fn a_postgres_blink_while_settling_a_bulk_call_does_not_send_it_again() {
    postgres_blinks_while_settling(true, 3).await;
}
