//! The support API of `interface.md`: roles, filters, pages and actions.

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, VIEWER_TOKEN, fixture, spawn_app};
use serde_json::{Value, json};

async fn app_with_leads() -> TestApp {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    for (source, ct, file) in [
        ("leadsquared", "application/json", "lsq_lead_create.json"),
        ("salesforce-flow", "application/json", "sf_flow_lead.json"),
        ("salesforce", "text/xml", "sf_outbound_lead_single.xml"),
    ] {
        assert_eq!(app.post(source, ct, fixture(file)).await.status(), 200);
    }
    app
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_decide_access() {
    let app = app_with_leads().await;
    assert_eq!(
        get(&app, ADMIN_TOKEN, "/admin/api/stats").await.status(),
        200
    );
    assert_eq!(
        get(&app, VIEWER_TOKEN, "/admin/api/stats").await.status(),
        200
    );
    assert_eq!(get(&app, "wrong", "/admin/api/stats").await.status(), 401);
    let anonymous = app
        .http
        .get(format!("{}/admin/api/stats", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let refused = post(&app, VIEWER_TOKEN, "/admin/api/outbox/replay", json!({})).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn admin_surface_is_off_without_an_admin_token() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        admin_token: None,
        ..AppOptions::default()
    })
    .await;
    assert_eq!(
        get(&app, VIEWER_TOKEN, "/admin/api/stats").await.status(),
        404
    );
    assert_eq!(get(&app, "", "/admin/api/outbox").await.status(), 404);
}

#[tokio::test]
async fn stats_count_rows_per_status() {
    let app = app_with_leads().await;
    let stats: Value = get(&app, VIEWER_TOKEN, "/admin/api/stats")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["outbox"]["pending"], 6);
    assert_eq!(stats["inbound"]["mapped"], 3);
    assert!(stats["oldest_pending_age_seconds"].as_f64().unwrap() >= 0.0);
    assert!(stats["delivery"]["state"].is_string());
}

#[tokio::test]
async fn outbox_is_found_by_user_source_and_free_text() {
    let app = app_with_leads().await;
    let by_user: Value = get(
        &app,
        VIEWER_TOKEN,
        "/admin/api/outbox?user_id=rohan.deshpande@example.com",
    )
    .await
    .json()
    .await
    .unwrap();
    let items = by_user["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the lead's user and event rows");
    assert!(items.iter().all(|i| i["source"] == "leadsquared"));
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first"
    );

    let by_source: Value = get(&app, VIEWER_TOKEN, "/admin/api/outbox?source=salesforce")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_source["items"].as_array().unwrap().len(), 2);

    // A CRM id that only the stored record holds, and a phone number in the payload.
    let by_crm_id: Value = get(&app, VIEWER_TOKEN, "/admin/api/outbox?q=00Q5j00000Hk5WdEAJ")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_crm_id["items"].as_array().unwrap().len(), 2);
    assert!(
        by_crm_id["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["source"] == "salesforce-flow")
    );
    let by_phone: Value = get(&app, VIEWER_TOKEN, "/admin/api/outbox?q=%2B919876543210")
        .await
        .json()
        .await
        .unwrap();
    assert!(!by_phone["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn pages_follow_the_cursor_without_overlap() {
    let app = app_with_leads().await;
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/admin/api/outbox?limit=4&before={c}"),
            None => "/admin/api/outbox?limit=4".to_owned(),
        };
        let page: Value = get(&app, VIEWER_TOKEN, &path).await.json().await.unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        match page["next"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "strictly newest first, no repeats");
}

#[tokio::test]
async fn one_row_shows_body_inbound_record_and_attempts() {
    let app = app_with_leads().await;
    let list: Value = get(&app, VIEWER_TOKEN, "/admin/api/outbox?source=leadsquared")
        .await
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_i64().unwrap();
    let row: Value = get(&app, VIEWER_TOKEN, &format!("/admin/api/outbox/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(row["id"], id);
    assert!(row["body"]["userId"].is_string());
    assert_eq!(
        row["inbound"]["payload"]["ProspectID"],
        "5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0"
    );
    assert_eq!(row["attempts_log"], json!([]));
    assert_eq!(
        get(&app, VIEWER_TOKEN, "/admin/api/outbox/999999")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn replay_cancel_and_retry_report_rows_and_are_audited() {
    let app = app_with_leads().await;
    sqlx::query(
        "UPDATE outbox SET status = 'dead', last_error = 'test' WHERE source = 'salesforce'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let replayed: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/outbox/replay",
        json!({"status": "dead", "source": "salesforce"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(replayed, json!({"replayed": 2}));
    let again: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/outbox/replay",
        json!({"status": "dead"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again, json!({"replayed": 0}), "safe to repeat");
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'pending'")
            .await,
        6
    );

    let id: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let cancelled: Value = post(
        &app,
        ADMIN_TOKEN,
        &format!("/admin/api/outbox/{id}/cancel"),
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(cancelled, json!({"cancelled": 1}));
    let retried: Value = post(
        &app,
        ADMIN_TOKEN,
        &format!("/admin/api/outbox/{id}/retry"),
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(retried, json!({"retried": 1}));

    let audit: Value = get(&app, VIEWER_TOKEN, "/admin/api/audit")
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["retry", "cancel", "replay", "replay"]);
    assert_eq!(audit[3]["rows"], 2);
    assert_eq!(audit[0]["role"], "admin");
}

#[tokio::test]
async fn inbound_records_list_and_remap_through_todays_mappings() {
    let app = app_with_leads().await;
    let malformed = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_malformed.json"),
        )
        .await;
    assert_eq!(malformed.status(), 200);
    let list: Value = get(&app, VIEWER_TOKEN, "/admin/api/inbound?status=malformed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Pretend a mapping had failed: re-mapping produces the operations again.
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM inbound_records WHERE source = 'salesforce-flow'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    sqlx::query("DELETE FROM outbox WHERE inbound_id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE inbound_records SET status = 'failed' WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let remapped: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/inbound/remap",
        json!({"status": "failed"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(remapped["remapped"], 1);
    assert_eq!(remapped["operations"], 2);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE inbound_id = {id} AND status = 'pending'"
        ))
        .await,
        2
    );
    let status: String =
        sqlx::query_scalar("SELECT status::text FROM inbound_records WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "mapped");

    // Re-mapping again supersedes the pending rows instead of doubling them.
    let one: Value = post(
        &app,
        ADMIN_TOKEN,
        &format!("/admin/api/inbound/{id}/remap"),
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["operations"], 2);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE inbound_id = {id} AND status = 'pending'"
        ))
        .await,
        2
    );
    let malformed_id = list["items"][0]["id"].as_i64().unwrap();
    assert_eq!(
        post(
            &app,
            ADMIN_TOKEN,
            &format!("/admin/api/inbound/{malformed_id}/remap"),
            json!({})
        )
        .await
        .status(),
        400
    );
}
