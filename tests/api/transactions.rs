//! Transactional campaigns end to end: a mapping rule's `transaction:` reaches
//! `/v2/accounts/{license}/experiments/{campaignId}/transaction` without the campaign id
//! in the body; 408 and 412 are final.

use std::path::Path;

use crate::helpers::{AppOptions, LICENSE, TestApp, spawn_app};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn transaction_path(campaign: &str) -> String {
    format!("/v2/accounts/{LICENSE}/experiments/{campaign}/transaction")
}

async fn app() -> TestApp {
    spawn_app(AppOptions {
        mappings_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mappings/transactions"),
        ..AppOptions::default()
    })
    .await
}

async fn post_otp(app: &TestApp, campaign: &str, txn: &str) {
    let body = json!({"campaign": campaign, "email": "a@b.co", "txn": txn, "otp": "4321"});
    let response = app
        .post("otp", "application/json", body.to_string().into_bytes())
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn a_transaction_reaches_its_campaign_without_the_campaign_id_in_the_body() {
    let app = app().await;
    Mock::given(method("POST"))
        .and(path(transaction_path("camp-1")))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}})),
        )
        .mount(&app.webengage)
        .await;
    post_otp(&app, "camp-1", "t-1").await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 1)
        .await;

    let received = app.received(&transaction_path("camp-1")).await;
    assert_eq!(received.len(), 1);
    let (body, request_id) = &received[0];
    assert_eq!(
        body,
        &json!({"userId": "a@b.co", "ttl": 300, "txnId": "t-1",
                "overrideData": {"email": "a@b.co", "context": {"token": {"otp": "4321"}}}})
    );
    let stored: uuid::Uuid = sqlx::query_scalar("SELECT request_id FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(request_id, &stored.simple().to_string());

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"bridge_webengage_responses_total{endpoint="transaction",code="201"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("bridge_delivery_latency_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unreachable_user_or_expired_ttl_is_dead_at_once() {
    let app = app().await;
    for (campaign, code, message) in [
        ("camp-412", 412, "User unreachable on this channel"),
        ("camp-408", 408, "TTL expired"),
    ] {
        Mock::given(method("POST"))
            .and(path(transaction_path(campaign)))
            .respond_with(
                ResponseTemplate::new(code)
                    .set_body_json(json!({"response": {"status": "error", "message": message}})),
            )
            .mount(&app.webengage)
            .await;
    }
    post_otp(&app, "camp-412", "t-2").await;
    post_otp(&app, "camp-408", "t-3").await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'dead'", 2)
        .await;

    let errors: Vec<(String, i32)> =
        sqlx::query_as("SELECT last_error, attempts FROM outbox ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert!(errors[0].0.contains("User unreachable"), "{errors:?}");
    assert!(errors[1].0.contains("TTL expired"), "{errors:?}");
    assert!(errors.iter().all(|(_, attempts)| *attempts == 1));
    for campaign in ["camp-412", "camp-408"] {
        assert_eq!(
            app.received(&transaction_path(campaign)).await.len(),
            1,
            "not retried"
        );
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("bridge_outbox_dead_total"), "{metrics}");
}
