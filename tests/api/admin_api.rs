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

/// Polls a job until it is no longer running.
async fn finished_job(app: &TestApp, location: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let job: Value = get(app, VIEWER_TOKEN, location).await.json().await.unwrap();
        if job["state"] != "running" {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never ended: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
    // The API takes the Bearer header only: a session cookie is no credential there.
    let cookie_only = app
        .http
        .get(format!("{}/admin/api/stats", app.address))
        .header("cookie", "wb_session=00")
        .send()
        .await
        .unwrap();
    assert_eq!(cookie_only.status(), 401);
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
    let counted: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/inbound/remap",
        json!({"status": "failed", "dry_run": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(counted, json!({"dry_run": true, "would_remap": 1}));
    let started = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/inbound/remap",
        json!({"status": "failed"}),
    )
    .await;
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = started.json().await.unwrap();
    assert_eq!(job["job"]["total"], 1);
    assert_eq!(location, format!("/admin/api/jobs/{}", job["job"]["id"]));
    let remapped = finished_job(&app, &location).await;
    assert_eq!(remapped["state"], "done");
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

/// The personal data of the fixtures that a viewer must never read unmasked.
const PERSONAL: [&str; 6] = [
    "rohan.deshpande@example.com",
    "9123456780",
    "9876543210",
    "Deshpande",
    "Sneha",
    "kavya.srinivasan@example.com",
];

fn assert_masked(what: &str, body: &str) {
    for personal in PERSONAL {
        assert!(
            !body.contains(personal),
            "{what} shows {personal} to a viewer: {body}"
        );
    }
}

#[tokio::test]
async fn viewers_read_masked_data_from_every_api_route_and_reveals_are_audited() {
    let app = app_with_leads().await;
    assert_eq!(
        app.post(
            "leadsquared",
            "application/json",
            fixture("lsq_malformed.json")
        )
        .await
        .status(),
        200
    );
    let row: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox WHERE source = 'leadsquared'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let record: i64 =
        sqlx::query_scalar("SELECT min(id) FROM inbound_records WHERE source = 'leadsquared'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let malformed: i64 =
        sqlx::query_scalar("SELECT id FROM inbound_records WHERE status = 'malformed'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE outbox SET last_error = 'HTTP 400: rohan.deshpande@example.com rejected'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let routes = [
        "/admin/api/outbox".to_owned(),
        "/admin/api/outbox?q=rohan.deshpande%40example.com".to_owned(),
        format!("/admin/api/outbox/{row}"),
        "/admin/api/inbound".to_owned(),
        "/admin/api/inbound?status=malformed".to_owned(),
        format!("/admin/api/inbound/{record}"),
        format!("/admin/api/inbound/{malformed}"),
        "/admin/api/audit".to_owned(),
    ];
    for route in &routes {
        let answer = get(&app, VIEWER_TOKEN, route).await;
        assert_eq!(answer.status(), 200, "{route}");
        assert_masked(route, &answer.text().await.unwrap());
    }
    // Masked the way the pages mask: enough left to tell leads apart, flags readable.
    let shown: Value = get(&app, VIEWER_TOKEN, &format!("/admin/api/outbox/{row}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["inbound"]["payload"]["EmailAddress"],
        "r***@example.com"
    );
    assert_eq!(shown["inbound"]["payload"]["Mobile"], "+91******6780");
    assert_eq!(shown["inbound"]["payload"]["DoNotEmail"], "0");
    assert!(
        shown["masked_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("Mobile"))
    );
    let no_reveals = "SELECT count(*) FROM admin_audit WHERE action = 'reveal'";
    assert_eq!(app.count(no_reveals).await, 0, "reading is not revealing");

    // A reveal shows the field, and is on record before it is shown.
    let one: Value = get(
        &app,
        VIEWER_TOKEN,
        &format!("/admin/api/outbox/{row}?reveal=Mobile"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["inbound"]["payload"]["Mobile"], "+91-9123456780");
    assert_eq!(one["inbound"]["payload"]["LastName"], "D***");
    let all = get(
        &app,
        VIEWER_TOKEN,
        &format!("/admin/api/inbound/{record}?reveal=all"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(all.contains("rohan.deshpande@example.com"));
    let audited: Vec<(String, String)> =
        sqlx::query_as("SELECT role, target FROM admin_audit WHERE action = 'reveal' ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        audited,
        [
            ("viewer".into(), format!("outbox {row} fields Mobile")),
            ("viewer".into(), format!("inbound {record}")),
        ]
    );

    // Admins read everything and reveal nothing.
    for route in &routes[..4] {
        let plain = get(&app, ADMIN_TOKEN, route).await.text().await.unwrap();
        assert!(plain.contains("rohan.deshpande@example.com"), "{route}");
    }
    assert_eq!(app.count(no_reveals).await, 2);
}

#[tokio::test]
async fn searches_that_cannot_be_answered_are_a_400() {
    let app = app_with_leads().await;
    for route in [
        "/admin/api/outbox?q=a%00b".to_owned(),
        format!("/admin/api/outbox?q={}", "x".repeat(201)),
        "/admin/api/outbox?status=lost".to_owned(),
        "/admin/api/inbound?status=dead".to_owned(),
        "/admin/api/inbound?source=a%00".to_owned(),
    ] {
        let answer = get(&app, ADMIN_TOKEN, &route).await;
        assert_eq!(answer.status(), 400, "{route}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{route}");
    }
    let replay = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/outbox/replay",
        json!({"status": "delivered"}),
    )
    .await;
    assert_eq!(replay.status(), 400);
}

#[tokio::test]
async fn actions_that_change_nothing_answer_409_with_the_reason() {
    let app = app_with_leads().await;
    let id: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET status = 'delivered', delivered_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    for (action, reason) in [
        ("retry", "already delivered: use resend"),
        ("cancel", "is delivered"),
    ] {
        let answer = post(
            &app,
            ADMIN_TOKEN,
            &format!("/admin/api/outbox/{id}/{action}"),
            json!({}),
        )
        .await;
        assert_eq!(answer.status(), 409, "{action}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "conflict");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{action}: {message}");
    }
    let pending: i64 = sqlx::query_scalar("SELECT max(id) FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let resend = post(
        &app,
        ADMIN_TOKEN,
        &format!("/admin/api/outbox/{pending}/resend"),
        json!({}),
    )
    .await;
    assert_eq!(resend.status(), 409);
    assert_eq!(
        post(
            &app,
            ADMIN_TOKEN,
            "/admin/api/outbox/999999/retry",
            json!({})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.count("SELECT count(*) FROM admin_audit").await,
        0,
        "refused actions did nothing to audit"
    );
}

#[tokio::test]
async fn a_bulk_remap_walks_every_matching_record_in_a_background_job() {
    let app = app_with_leads().await;
    // More records than one step of the walk reads, all failed.
    sqlx::query(
        "INSERT INTO inbound_records (source, dedupe_key, status, payload, error)
         SELECT source, dedupe_key || ':' || n, 'failed', payload, 'x'
         FROM inbound_records, generate_series(1, 130) AS n WHERE source = 'salesforce-flow'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let started: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/inbound/remap",
        json!({"status": "failed", "source": "salesforce-flow"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(started["job"]["total"], 130);
    let location = format!("/admin/api/jobs/{}", started["job"]["id"]);
    let job = finished_job(&app, &location).await;
    assert_eq!(
        (job["state"].as_str(), job["done"].as_i64()),
        (Some("done"), Some(130))
    );
    assert_eq!(job["remapped"], 130);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'failed'")
            .await,
        0
    );
    // Nothing left to re-map: a job that would change nothing is refused.
    let again = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/inbound/remap",
        json!({"status": "failed"}),
    )
    .await;
    assert_eq!(again.status(), 409);
    let audit: Vec<(String, i64)> =
        sqlx::query_as("SELECT target, rows FROM admin_audit WHERE action = 'remap'")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0].0.ends_with("status=failed source=salesforce-flow"),
        "{audit:?}"
    );
    assert_eq!(audit[0].1, 130);
}

/// Every text of every row of every table: what a `pg_dump` of the data would hold.
async fn everything_stored(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let mut all = String::new();
    for table in tables {
        let text: String = sqlx::query_scalar(&format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"
        ))
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        all.push_str(&text);
        all.push('\n');
    }
    all.to_lowercase()
}

#[tokio::test]
async fn erasing_a_person_leaves_no_trace_of_their_email_or_phone() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    for (source, file) in [
        ("leadsquared", "lsq_lead_create.json"),
        ("leadsquared", "lsq_activity.json"),
        ("leadsquared", "lsq_malformed.json"),
        ("salesforce-flow", "sf_flow_lead.json"),
    ] {
        let ok = app.post(source, "application/json", fixture(file)).await;
        assert_eq!(ok.status(), 200);
    }
    // A delivery attempt whose response quotes the person, and a reveal in the audit log.
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, http_status, outcome, latency_ms, response_excerpt, request_id)
         SELECT id, 400, 'dead', 12, 'bad phone +91-9876543210 for rohan.deshpande@example.com', request_id
         FROM outbox WHERE source = 'leadsquared'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let before = everything_stored(&app).await;
    assert!(before.contains("rohan.deshpande@example.com") && before.contains("9876543210"));
    assert!(before.contains("kavya.srinivasan@example.com"));

    let refused = post(
        &app,
        VIEWER_TOKEN,
        "/admin/api/erase",
        json!({"email": "rohan.deshpande@example.com"}),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let bad = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/erase",
        json!({"email": "x@y.z", "phone": "1234567"}),
    )
    .await;
    assert_eq!(bad.status(), 400);

    let erased: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/erase",
        json!({"email": "Rohan.Deshpande@example.com"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        erased["erased"]["inbound_records"].as_u64().unwrap() >= 3,
        "{erased}"
    );
    assert!(
        erased["erased"]["attempts"].as_u64().unwrap() >= 1,
        "{erased}"
    );
    let after = everything_stored(&app).await;
    for trace in [
        "rohan.deshpande@example.com",
        "9876543210",
        "9123456780",
        "9988776655",
    ] {
        assert!(!after.contains(trace), "{trace} is still stored");
    }
    assert!(
        after.contains("kavya.srinivasan@example.com"),
        "other people are left alone"
    );
    let audit: (String, String) =
        sqlx::query_as("SELECT role, target FROM admin_audit WHERE action = 'erase'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(audit.0, "admin");
    assert!(audit.1.starts_with("erase by email: "), "{audit:?}");

    // By phone, whatever its separators (stored as `+91 80 4567 1234`).
    let kavya_phone: Value = post(
        &app,
        ADMIN_TOKEN,
        "/admin/api/erase",
        json!({"phone": "080-4567-1234"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(kavya_phone["erased"]["outbox_rows"].as_u64().unwrap() >= 1);
    let last = everything_stored(&app).await;
    assert!(!last.contains("kavya.srinivasan@example.com") && !last.contains("4567 1234"));
}

#[tokio::test]
async fn a_resent_row_reaches_webengage_again_under_a_new_request_id() {
    let app = spawn_app(AppOptions::default()).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"response": {"status": "queued"}})),
        )
        .mount(&app.webengage)
        .await;
    let ok = app
        .post(
            "salesforce-flow",
            "application/json",
            fixture("sf_flow_lead.json"),
        )
        .await;
    assert_eq!(ok.status(), 200);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 2)
        .await;
    let (id, path): (i64, String) = sqlx::query_as(
        "SELECT id, CASE kind WHEN 'user' THEN 'users' ELSE 'events' END FROM outbox ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let path = format!("/v1/accounts/{}/{path}", crate::helpers::LICENSE);
    let first = app.received(&path).await;
    assert_eq!(first.len(), 1);

    let resent = post(
        &app,
        ADMIN_TOKEN,
        &format!("/admin/api/outbox/{id}/resend"),
        json!({}),
    )
    .await;
    assert_eq!(resent.status(), 200);
    assert_eq!(resent.json::<Value>().await.unwrap(), json!({"resent": 1}));
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 2)
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let again = loop {
        let got = app.received(&path).await;
        if got.len() == 2 {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not sent again: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(again[1].0, again[0].0, "the same body");
    assert_ne!(again[1].1, again[0].1, "under a new x-request-id");
    assert!(!again[1].1.is_empty());
    let audit: (String, String) = sqlx::query_as("SELECT action, target FROM admin_audit")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(audit, ("resend".into(), format!("outbox {id}")));
}

#[tokio::test]
async fn a_text_search_reads_a_bounded_window_per_page_and_continues_below_it() {
    let app = app_with_leads().await;
    // Newer rows than the leads, more than one page's window.
    sqlx::query(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
         SELECT gen_random_uuid(), 'bulk', 'r', 'event', 'u' || n, '{}'::json
         FROM generate_series(1, 10050) AS n",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let first: Value = get(
        &app,
        VIEWER_TOKEN,
        "/admin/api/outbox?q=kavya.srinivasan%40example.com",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        first["items"],
        json!([]),
        "the newest window holds no match"
    );
    let next = first["next"].as_i64().expect("the search goes on below");
    let second: Value = get(
        &app,
        VIEWER_TOKEN,
        &format!("/admin/api/outbox?q=kavya.srinivasan%40example.com&before={next}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 2, "{second}");
    assert_eq!(second["next"], Value::Null);
    // Too short to search, or holding a NUL: refused, not a scan.
    assert_eq!(
        get(&app, VIEWER_TOKEN, "/admin/api/outbox?q=ab")
            .await
            .status(),
        400
    );
}
