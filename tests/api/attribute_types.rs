//! WebEngage stops recording an attribute whose type changes: the first type this
//! bridge sent wins, and a value of another type is dropped with a warning.

use crate::helpers::{AppOptions, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn a_value_of_another_type_than_first_sent_is_dropped_with_a_warning() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        mappings_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mappings/types"),
        ..AppOptions::default()
    })
    .await;
    let first = app
        .post(
            "crm-a",
            "application/json",
            br#"{"email": "a@example.com", "plan": "gold"}"#.to_vec(),
        )
        .await;
    assert_eq!(first.status(), 200);
    let second = app
        .post(
            "crm-b",
            "application/json",
            br#"{"email": "b@example.com", "plan": "3"}"#.to_vec(),
        )
        .await;
    assert_eq!(second.status(), 200);

    let recorded: String = sqlx::query_scalar(
        "SELECT json_type FROM attribute_types WHERE scope = 'user' AND name = 'plan'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, "string");
    let body: Value = sqlx::query_scalar("SELECT body FROM outbox WHERE source = 'crm-b'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(body["userId"], "b@example.com");
    assert!(
        body.get("attributes").and_then(|a| a.get("plan")).is_none(),
        "{body}"
    );
    let warnings: Value =
        sqlx::query_scalar("SELECT warnings FROM inbound_records WHERE source = 'crm-b'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let text = warnings.to_string();
    assert!(text.contains("plan") && text.contains("string"), "{text}");
    // The first CRM's string values keep flowing.
    let third = app
        .post(
            "crm-a",
            "application/json",
            br#"{"email": "c@example.com", "plan": "silver"}"#.to_vec(),
        )
        .await;
    assert_eq!(third.status(), 200);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE body->'attributes'->>'plan' = 'silver'")
            .await,
        1
    );
}
