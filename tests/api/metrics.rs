//! `/metrics` names what operators alert on: mapping problems by rule, reload outcomes.

use std::time::Duration;

use crate::helpers::{AppOptions, fixture, spawn_app};
use serde_json::{Value, json};

fn lead(id: &str, email: Option<&str>, phone: &str) -> Vec<u8> {
    let mut lead: Value = serde_json::from_slice(&fixture("sf_flow_lead.json")).unwrap();
    lead["Id"] = json!(id);
    lead["Email"] = json!(email);
    lead["Phone"] = json!(phone);
    serde_json::to_vec(&lead).unwrap()
}

#[tokio::test]
async fn mapping_warnings_failures_and_reloads_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(crate::helpers::example_mappings())
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mappings = dir.path().join("mappings");
    let app = spawn_app(AppOptions {
        mappings_dir: mappings.clone(),
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let warned = lead("00Q5j00000Hk0001", Some("a@example.com"), "not a phone");
    let failed = lead("00Q5j00000Hk0002", None, "+91 80 4567 1234");
    for body in [warned, failed] {
        let r = app.post("salesforce-flow", "application/json", body).await;
        assert_eq!(r.status(), 200);
    }
    let text = app.metrics().await;
    for expected in [
        r#"bridge_mapping_warnings_total{source="salesforce-flow",rule="lead-profile"}"#,
        r#"bridge_mapping_failures_total{source="salesforce-flow",rule="lead-profile"}"#,
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }

    std::fs::write(mappings.join("broken.yaml"), "source: [unclosed\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = app.metrics().await;
        if text.contains(r#"bridge_mapping_reloads_total{outcome="error"}"#)
            && text.contains("bridge_mapping_reload_failing 1")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed reload counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
