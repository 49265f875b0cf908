//! The webhook contract of `interface.md`, driven over HTTP against the real app and Postgres.

use crate::helpers::{AppOptions, TestApp, fixture, spawn_app};
use serde_json::Value;

async fn app_without_worker() -> TestApp {
    spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await
}

const SF_ACK: &str = "<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>true</Ack></notificationsResponse>";

#[tokio::test]
async fn salesforce_message_is_acked_after_storing_its_record() {
    let app = app_without_worker().await;
    let response = app
        .post(
            "salesforce",
            "text/xml; charset=utf-8",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains(SF_ACK),
        "not the Ack Salesforce expects: {body}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'mapped'")
            .await,
        1
    );
    assert!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'pending'")
            .await
            >= 1
    );
}

#[tokio::test]
async fn redelivered_salesforce_message_makes_no_new_rows() {
    let app = app_without_worker().await;
    let first = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(first.status(), 200);
    let rows = app.count("SELECT count(*) FROM outbox").await;
    let again = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(again.status(), 200, "a redelivery is still acknowledged");
    assert!(again.text().await.unwrap().contains(SF_ACK));
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, rows);
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 1);
}

#[tokio::test]
async fn salesforce_session_id_is_never_stored() {
    let app = app_without_worker().await;
    let xml = String::from_utf8(fixture("sf_outbound_lead_single.xml"))
        .unwrap()
        .replace(
            r#"<SessionId xsi:nil="true"/>"#,
            "<SessionId>00D5j!AQ4AQLIVESESSIONTOKEN</SessionId>",
        );
    assert_eq!(
        app.post("salesforce", "text/xml", xml.into_bytes())
            .await
            .status(),
        200
    );
    let stored = app
        .count("SELECT count(*) FROM inbound_records WHERE payload::text LIKE '%LIVESESSIONTOKEN%' OR coalesce(raw_body, '') LIKE '%LIVESESSIONTOKEN%'")
        .await;
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn wrong_organization_id_is_refused_and_nothing_stored() {
    let app = app_without_worker().await;
    let xml = String::from_utf8(fixture("sf_outbound_lead_single.xml"))
        .unwrap()
        .replace("00D5j00000KqRtBEAV", "00D000000000001AAA");
    let response = app.post("salesforce", "text/xml", xml.into_bytes()).await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unauthorized");
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn malformed_salesforce_xml_gets_400_and_no_ack() {
    let app = app_without_worker().await;
    let response = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_malformed.xml"),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(!body.contains("<Ack>true</Ack>"));
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn leadsquared_lead_is_stored_once_and_answered_with_status() {
    let app = app_without_worker().await;
    let response = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_lead_create.json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Status"], "Success");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["duplicates"], 0);

    let again: Value = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_lead_create.json"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["Status"], "Success");
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 1);
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 1);
}

#[tokio::test]
async fn leadsquared_malformed_body_is_kept_and_answered_200_with_error() {
    let app = app_without_worker().await;
    let response = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_malformed.json"),
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "LeadSquared may disable a webhook that answers non-200"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Status"], "Error");
    assert!(!body["StatusReason"].as_str().unwrap().is_empty());
    assert_eq!(app.count("SELECT count(*) FROM inbound_records WHERE status = 'malformed' AND raw_body IS NOT NULL").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn leadsquared_head_check_answers_200() {
    let app = app_without_worker().await;
    let response = app
        .http
        .head(format!("{}/webhooks/leadsquared", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The webhook path is routed by hand (no `{source}` pattern): it must still answer
/// like one.
#[tokio::test]
async fn webhook_paths_answer_404_and_405_as_a_route_pattern_would() {
    let app = app_without_worker().await;
    let status = |method: reqwest::Method, path: &str| {
        let request = app.http.request(method, format!("{}{path}", app.address));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(reqwest::Method::GET, "/webhooks/leadsquared").await,
        405
    );
    assert_eq!(
        status(reqwest::Method::HEAD, "/webhooks/nosuchsource").await,
        404
    );
    assert_eq!(
        status(reqwest::Method::POST, "/webhooks/leadsquared/extra").await,
        404
    );
    assert_eq!(status(reqwest::Method::POST, "/webhooks/").await, 404);
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 0);
}

#[tokio::test]
async fn flow_json_lead_is_accepted_with_counts() {
    let app = app_without_worker().await;
    let response = app
        .post(
            "salesforce-flow",
            "application/json",
            fixture("sf_flow_lead.json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"accepted": 1, "duplicates": 0, "ignored": 0, "stale": 0, "failed": 0})
    );
}

#[tokio::test]
async fn unknown_source_is_404_and_oversized_body_is_413() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        max_body: 1024,
        ..AppOptions::default()
    })
    .await;
    let response = app
        .post("no-such-crm", "application/json", b"{}".to_vec())
        .await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unknown_source");

    let response = app
        .post("leadsquared", "application/json", vec![b' '; 1025])
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 0);
}

#[tokio::test]
async fn query_and_header_secrets_are_checked() {
    // SAFETY: set once, before the app reads them, to constant values; no test unsets them.
    unsafe {
        std::env::set_var("WB_TEST_SF_QUERY_TOKEN", "sf-url-secret");
        std::env::set_var("WB_TEST_LSQ_HEADER_TOKEN", "lsq-header-secret");
    }
    let app = spawn_app(AppOptions {
        with_worker: false,
        mappings_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/mappings/secured"),
        ..AppOptions::default()
    })
    .await;
    let sf = |query: &str| {
        app.http
            .post(format!("{}/webhooks/sf-secured{query}", app.address))
            .header("content-type", "text/xml")
            .body(fixture("sf_outbound_lead_single.xml"))
            .send()
    };
    assert_eq!(sf("").await.unwrap().status(), 401);
    assert_eq!(sf("?token=wrong").await.unwrap().status(), 401);
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 0);
    assert_eq!(sf("?token=sf-url-secret").await.unwrap().status(), 200);

    let lsq = |token: &str| {
        app.http
            .post(format!("{}/webhooks/lsq-secured", app.address))
            .header("content-type", "application/json")
            .header("x-bridge-token", token)
            .body(fixture("lsq_lead_create.json"))
            .send()
    };
    let refused = lsq("nope").await.unwrap();
    assert_eq!(refused.status(), 401);
    let text = refused.text().await.unwrap();
    assert!(
        !text.contains("lsq-header-secret"),
        "the secret leaked into an error: {text}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE source = 'lsq-secured'")
            .await,
        0
    );
    assert_eq!(lsq("lsq-header-secret").await.unwrap().status(), 200);
}

#[tokio::test]
async fn health_and_readiness_with_the_example_mappings() {
    let app = spawn_app(AppOptions {
        credentials: false,
        ..AppOptions::default()
    })
    .await;
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let detail: Value = ready.json().await.unwrap();
    assert_eq!(detail["database"]["ok"], true);
    assert_eq!(
        detail["delivery"]["state"], "paused",
        "no credentials: delivery waits, says so"
    );
    let sources: Vec<&str> = detail["mappings"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in ["leadsquared", "salesforce", "salesforce-flow"] {
        assert!(
            sources.contains(&expected),
            "{expected} missing from {sources:?}"
        );
    }
}

#[tokio::test]
async fn metrics_count_webhooks_and_outbox_rows_without_secrets() {
    let app = app_without_worker().await;
    assert_eq!(
        app.post(
            "leadsquared",
            "application/json",
            fixture("lsq_lead_create.json")
        )
        .await
        .status(),
        200
    );
    let text = app.metrics().await;
    assert!(text.contains("bridge_webhooks_total{"), "{text}");
    assert!(
        text.contains(r#"bridge_outbox_rows{status="pending"}"#),
        "{text}"
    );
    assert!(!text.contains(crate::helpers::API_KEY));
}
