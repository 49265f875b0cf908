//! The end of stored data: retention of every finished record and of the audit log.

use std::time::Duration;

use crate::helpers::{AppOptions, TestApp, fixture, spawn_app};
use webengage_bridge::store::lifecycle;

async fn app_with_leads() -> TestApp {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    for (source, ct, file) in [
        ("leadsquared", "application/json", "lsq_lead_create.json"),
        ("leadsquared", "application/json", "lsq_activity.json"),
        ("leadsquared", "application/json", "lsq_malformed.json"),
        ("salesforce-flow", "application/json", "sf_flow_lead.json"),
        ("salesforce", "text/xml", "sf_outbound_lead_single.xml"),
    ] {
        assert_eq!(app.post(source, ct, fixture(file)).await.status(), 200);
    }
    app
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sql).execute(&app.db.pool).await.expect(sql);
}

#[tokio::test]
async fn retention_removes_every_finished_state_with_its_attempts_and_keeps_open_work() {
    let app = app_with_leads().await;
    // Every outbox row gets an attempt; then each source's rows finish differently.
    exec(
        &app,
        "INSERT INTO delivery_attempts (outbox_id, http_status, outcome, latency_ms, response_excerpt, request_id)
         SELECT id, 400, 'dead', 5, 'bad', request_id FROM outbox",
    )
    .await;
    exec(
        &app,
        "UPDATE outbox SET status = 'dead' WHERE source = 'leadsquared'",
    )
    .await;
    exec(
        &app,
        "UPDATE outbox SET status = 'cancelled' WHERE source = 'salesforce-flow'",
    )
    .await;
    // Salesforce's rows stay pending: open work is never purged, nor its record.
    exec(
        &app,
        "UPDATE inbound_records SET status = 'ignored' WHERE source = 'salesforce-flow'",
    )
    .await;
    exec(
        &app,
        "UPDATE outbox SET updated_at = now() - interval '40 days', created_at = now() - interval '40 days'",
    )
    .await;
    exec(
        &app,
        "UPDATE inbound_records SET received_at = now() - interval '40 days'",
    )
    .await;
    exec(
        &app,
        "UPDATE record_versions SET updated_at = now() - interval '40 days'",
    )
    .await;
    exec(
        &app,
        "INSERT INTO admin_audit (at, role, action, target, rows) VALUES
           (now() - interval '400 days', 'admin', 'retry', 'outbox 1', 1),
           (now() - interval '10 days', 'admin', 'retry', 'outbox 2', 1)",
    )
    .await;
    exec(
        &app,
        "INSERT INTO record_versions (source, record_key, version_at, updated_at)
         VALUES ('x', 'old', '2020', now() - interval '40 days'), ('x', 'new', '2026', now())",
    )
    .await;
    // A fresh dead row and a fresh failed record stay: they are within the retention.
    let fresh = app
        .post("leadsquared", "application/json", {
            let mut lead: serde_json::Value =
                serde_json::from_slice(&fixture("lsq_lead_create.json")).unwrap();
            lead["ProspectID"] = serde_json::json!("fresh-1");
            serde_json::to_vec(&lead).unwrap()
        })
        .await;
    assert_eq!(fresh.status(), 200);
    exec(
        &app,
        "UPDATE outbox SET status = 'dead' WHERE updated_at > now() - interval '1 day'",
    )
    .await;

    let finished_old = app
        .count("SELECT count(*) FROM outbox WHERE status <> 'pending' AND updated_at < now() - interval '30 days'")
        .await;
    assert!(finished_old >= 4, "{finished_old}");
    let purged = lifecycle::purge_expired(
        &app.db.pool,
        Duration::from_secs(30 * 86400),
        Duration::from_secs(365 * 86400),
        2,
    )
    .await
    .unwrap();
    assert_eq!(purged.outbox, finished_old as u64, "{purged:?}");
    assert_eq!(purged.audit, 1);
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT source, status::text FROM outbox ORDER BY source, id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [
            ("leadsquared".into(), "dead".into()),
            ("leadsquared".into(), "dead".into()),
            ("salesforce".into(), "pending".into()),
            ("salesforce".into(), "pending".into()),
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM delivery_attempts").await,
        2,
        "the attempts of purged rows go with them"
    );
    let records: Vec<(String, String)> =
        sqlx::query_as("SELECT source, dedupe_key FROM inbound_records ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        records.len(),
        2,
        "the pending salesforce lead and the fresh one: {records:?}"
    );
    assert_eq!(records[0].0, "salesforce");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM record_versions WHERE updated_at < now() - interval '30 days'"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_versions WHERE record_key = 'new'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM admin_audit").await, 1);
}
