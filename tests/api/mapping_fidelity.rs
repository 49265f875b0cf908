//! What a mapping produces is what WebEngage receives: a blank value falls through a
//! path list on the webhook path and on a support re-map, and `mappings preview`
//! shows exactly the bodies the worker sends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AppOptions, LICENSE, TestApp, spawn_app};

fn mappings_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write mapping");
    }
    dir
}

async fn outbox_bodies(app: &TestApp) -> Vec<Value> {
    sqlx::query_scalar("SELECT body FROM outbox ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .expect("outbox bodies")
}

const PATH_LIST: &str = "source: { format: leadsquared, auth: none }\nrules:\n  - name: lead\n    user: { userId: { path: [$.EmailAddress, $.ProspectID] }, firstName: $.FirstName }\n";

/// The shown-by of issue 16: a lead whose email is `""` reaches the outbox under its
/// ProspectID.
#[tokio::test]
async fn a_lead_with_an_empty_email_is_sent_under_its_prospect_id() {
    let dir = mappings_dir(&[("lsq.yaml", PATH_LIST)]);
    let app = spawn_app(AppOptions {
        mappings_dir: dir.path().to_owned(),
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let lead = json!({"EmailAddress": "", "ProspectID": "p-1", "FirstName": "Asha"});
    let response = app
        .post("lsq", "application/json", lead.to_string().into_bytes())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        outbox_bodies(&app).await,
        vec![json!({"userId": "p-1", "firstName": "Asha"})]
    );
}

/// The support loop of issue 16: the record failed under a mapping that required the
/// email; once the mapping lists the ProspectID after it, "Re-map" gives one row.
#[tokio::test]
async fn a_failed_lead_remapped_after_the_fix_gives_one_outbox_row() {
    let strict = "source: { format: leadsquared, auth: none }\nrules:\n  - name: lead\n    user: { userId: { path: $.EmailAddress, required: true } }\n";
    let dir = mappings_dir(&[("lsq.yaml", strict)]);
    let app = spawn_app(AppOptions {
        mappings_dir: dir.path().to_owned(),
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let lead = json!({"EmailAddress": "", "ProspectID": "p-2", "FirstName": "Ravi"});
    let response = app
        .post("lsq", "application/json", lead.to_string().into_bytes())
        .await;
    assert_eq!(response.status(), 200);
    let (id, status): (i64, String) =
        sqlx::query_as("SELECT id, status::text FROM inbound_records")
            .fetch_one(&app.db.pool)
            .await
            .expect("one inbound record");
    assert_eq!(status, "failed");
    assert!(outbox_bodies(&app).await.is_empty());

    std::fs::write(dir.path().join("lsq.yaml"), PATH_LIST).expect("fix the mapping");
    // The fixed file is picked up by the watcher; until then a re-map gives nothing.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let remapped: Value = app
            .http
            .post(format!("{}/admin/api/inbound/{id}/remap", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("remap")
            .json()
            .await
            .expect("JSON");
        if remapped["operations"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never re-mapped: {remapped}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        outbox_bodies(&app).await,
        vec![json!({"userId": "p-2", "firstName": "Ravi"})]
    );
    let status: String = sqlx::query_scalar("SELECT status::text FROM inbound_records")
        .fetch_one(&app.db.pool)
        .await
        .expect("status");
    assert_eq!(status, "mapped");
}

const CRM: &str = r#"
source: { format: json, auth: none }
rules:
  - name: lead
    user:
      userId: { path: [$.email, $.id] }
      firstName: $.first
      phone: $.phone
      attributes: { tags: $.tags, score: { path: $.score, transform: [number] } }
    event:
      eventName: Lead Synced
      eventTime: { path: $.at, transform: [datetime] }
      eventData: { stage: $.stage }
    transaction:
      campaignId: camp-9
      ttl: 300
      dedupe: { ttl: 600 }
      overrideData: { email: $.id }
"#;

/// `mappings preview` run as the binary, on `body`.
fn preview(dir: &Path, source: &str, body: &[u8]) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_webengage-bridge"))
        .args(["mappings", "preview", "--source", source, "--dir"])
        .arg(dir)
        .arg("-")
        .env_remove("BRIDGE_MAPPINGS_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("body written");
    let out = child.wait_with_output().expect("preview ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("preview prints JSON")
}

/// Issue 17.5: each body the preview shows is, byte for byte, the body the worker
/// sends; a transaction's campaign id is shown beside its body, as it goes in the URL.
#[tokio::test]
async fn preview_bodies_are_the_bodies_the_worker_sends() {
    let dir = mappings_dir(&[("crm.yaml", CRM)]);
    let app = spawn_app(AppOptions {
        mappings_dir: dir.path().to_owned(),
        ..AppOptions::default()
    })
    .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"response": {"status": "queued"}})),
        )
        .mount(&app.webengage)
        .await;
    let body = json!({
        "email": "", "id": "p-7", "first": "Asha", "phone": "+91-98765",
        "tags": ["a", "b"], "score": "12", "at": "2024-01-15T10:30:00.123+0000", "stage": "new"
    })
    .to_string()
    .into_bytes();

    let shown = preview(dir.path(), "crm", &body);
    let record = &shown["records"][0];
    assert_eq!(record["status"], "mapped", "{shown}");
    let operations = record["operations"].as_array().expect("operations");
    assert_eq!(operations.len(), 3, "{shown}");

    let response = app.post("crm", "application/json", body).await;
    assert_eq!(response.status(), 200);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 3)
        .await;
    let received = app.webengage.received_requests().await.expect("recorded");
    assert_eq!(received.len(), 3);
    for op in operations {
        let path = match op["kind"].as_str() {
            Some("user") => format!("/v1/accounts/{LICENSE}/users"),
            Some("event") => format!("/v1/accounts/{LICENSE}/events"),
            Some("transaction") => format!(
                "/v2/accounts/{LICENSE}/experiments/{}/transaction",
                op["campaignId"]
                    .as_str()
                    .expect("campaignId beside the body")
            ),
            other => panic!("unexpected kind {other:?}"),
        };
        let sent = received
            .iter()
            .find(|r| r.url.path() == path)
            .unwrap_or_else(|| panic!("nothing sent to {path}"));
        assert_eq!(
            String::from_utf8_lossy(&sent.body),
            serde_json::to_string(&op["body"]).expect("JSON"),
            "{path}"
        );
    }
    // The fidelity rules are in what was sent: the blank email fell through, the
    // malformed phone was dropped, milliseconds and dedupe reached WebEngage.
    let bodies: Vec<&Value> = operations.iter().map(|op| &op["body"]).collect();
    assert_eq!(bodies[0]["userId"], "p-7");
    assert!(bodies[0].get("phone").is_none());
    assert_eq!(bodies[1]["eventTime"], "2024-01-15T10:30:00.123+0000");
    assert_eq!(bodies[2]["dedupe"], json!({"ttl": 600}));
    assert!(bodies[2].get("campaignId").is_none());
}
