//! `outbox ...` and `inbound ...` from a terminal, against a real database.

use std::process::Command;

use crate::helpers::{AppOptions, TestApp, example_mappings, fixture, spawn_app};
use serde_json::Value;

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

/// Runs the binary with `args` on the app's database; returns (success, stdout, stderr).
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let url = app.db.url.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_webengage-bridge"))
            .args(&args)
            .env("DATABASE_URL", url)
            .env("BRIDGE_MAPPINGS_DIR", example_mappings())
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let (ok, out, err) = cli(app, args).await;
    assert!(ok, "{args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[tokio::test]
async fn stats_list_and_show_read_the_outbox() {
    let app = app_with_leads().await;
    let stats = cli_json(&app, &["outbox", "stats", "--json"]).await;
    assert_eq!(stats["by_status"]["pending"], 6);

    let (ok, table, _) = cli(&app, &["outbox", "stats"]).await;
    assert!(ok);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["outbox", "pending", "6"])),
        "{table}"
    );
    // The backlog: queued per kind, the rate, the time to drain (no worker yet: unknown).
    assert!(
        table.contains(
            "queued: 3 users, 3 events, 0 transactions; delivering 0 a minute; drains in ?"
        ),
        "{table}"
    );
    assert_eq!(stats["backlog"]["queued"]["users"], 3, "{stats}");

    let page = cli_json(
        &app,
        &["outbox", "list", "--source", "salesforce", "--json"],
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let found = cli_json(
        &app,
        &[
            "outbox",
            "list",
            "-q",
            "kavya.srinivasan@example.com",
            "--json",
        ],
    )
    .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 2);
    let first = cli_json(&app, &["outbox", "list", "--limit", "4", "--json"]).await;
    let next = first["next"].as_i64().expect("a second page");
    let second = cli_json(
        &app,
        &["outbox", "list", "--before", &next.to_string(), "--json"],
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 2);

    let (ok, listing, _) = cli(&app, &["outbox", "list", "--source", "leadsquared"]).await;
    assert!(ok);
    assert!(listing.starts_with("id "), "{listing}");
    assert!(listing.contains("rohan.deshpande@example.com"));

    let id = page["items"][0]["id"].as_i64().unwrap().to_string();
    let row = cli_json(&app, &["outbox", "show", &id, "--json"]).await;
    assert_eq!(row["id"].to_string(), id);
    assert!(row["inbound"]["payload"].is_object());
    let (ok, shown, _) = cli(&app, &["outbox", "show", &id]).await;
    assert!(ok && shown.contains("payload:"), "{shown}");
    let (ok, _, err) = cli(&app, &["outbox", "show", "999999"]).await;
    assert!(!ok && err.contains("no outbox row 999999"), "{err}");
}

#[tokio::test]
async fn retry_cancel_and_replay_act_and_are_audited() {
    let app = app_with_leads().await;
    sqlx::query(
        "UPDATE outbox SET status = 'dead', last_error = 'HTTP 400' WHERE source <> 'leadsquared'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let replayed = cli_json(
        &app,
        &[
            "outbox",
            "replay",
            "--status",
            "dead",
            "--source",
            "salesforce",
            "--since",
            "2020-01-01T00:00:00Z",
            "--json",
        ],
    )
    .await;
    assert_eq!(replayed["rows"], 2);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'dead'")
            .await,
        2
    );

    let id: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox WHERE status = 'dead'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let (ok, said, _) = cli(&app, &["outbox", "cancel", &id.to_string()]).await;
    assert!(ok);
    assert_eq!(said.trim(), format!("cancel outbox {id}: 1 row(s)"));
    let retried = cli_json(&app, &["outbox", "retry", &id.to_string(), "--json"]).await;
    assert_eq!(retried["rows"], 1);

    let audit: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT role, action, rows FROM admin_audit ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            ("cli".into(), "replay".into(), 2),
            ("cli".into(), "cancel".into(), 1),
            ("cli".into(), "retry".into(), 1),
        ]
    );
}

#[tokio::test]
async fn inbound_records_list_and_remap() {
    let app = app_with_leads().await;
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
    sqlx::query("UPDATE inbound_records SET status = 'failed', error = 'x' WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();

    let failed = cli_json(&app, &["inbound", "list", "--status", "failed", "--json"]).await;
    assert_eq!(failed["items"][0]["id"], id);
    let (ok, table, _) = cli(&app, &["inbound", "list", "--source", "salesforce-flow"]).await;
    assert!(ok && table.contains("failed"), "{table}");

    let all = cli_json(&app, &["inbound", "remap", "--status", "failed", "--json"]).await;
    assert_eq!(
        (all["remapped"].as_u64(), all["operations"].as_u64()),
        (Some(1), Some(2))
    );
    let one = cli_json(&app, &["inbound", "remap", &id.to_string(), "--json"]).await;
    assert_eq!(one["operations"], 2);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE inbound_id = {id} AND status = 'pending'"
        ))
        .await,
        2
    );
    let (ok, _, err) = cli(&app, &["inbound", "remap"]).await;
    assert!(!ok && err.contains("--status"), "{err}");
}

#[tokio::test]
async fn actions_that_change_nothing_exit_non_zero_with_the_reason_and_resend_works() {
    let app = app_with_leads().await;
    let id: i64 = sqlx::query_scalar("SELECT min(id) FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let old: uuid::Uuid = sqlx::query_scalar(
        "UPDATE outbox SET status = 'delivered', delivered_at = now() WHERE id = $1 RETURNING request_id",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let (ok, _, err) = cli(&app, &["outbox", "retry", &id.to_string()]).await;
    assert!(!ok, "retrying a delivered row succeeded");
    assert!(err.contains("already delivered"), "{err}");

    let resent = cli_json(&app, &["outbox", "resend", &id.to_string(), "--json"]).await;
    assert_eq!(resent["rows"], 1);
    let (status, fresh): (String, uuid::Uuid) =
        sqlx::query_as("SELECT status::text, request_id FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "pending");
    assert_ne!(fresh, old, "a resend goes out under a new x-request-id");
    let (ok, _, err) = cli(&app, &["outbox", "resend", &id.to_string()]).await;
    assert!(!ok && err.contains("only a delivered row"), "{err}");

    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT role, action FROM admin_audit ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(audit, [("cli".into(), "resend".into())]);
}

#[tokio::test]
async fn bulk_remap_counts_first_and_has_no_silent_cap() {
    let app = app_with_leads().await;
    sqlx::query("UPDATE inbound_records SET status = 'failed', error = 'x'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let counted = cli_json(
        &app,
        &[
            "inbound",
            "remap",
            "--status",
            "failed",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(counted["would_remap"], 3);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'failed'")
            .await,
        3,
        "a dry run changes nothing"
    );
    let (ok, out, err) = cli(&app, &["inbound", "remap", "--status", "failed"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("remapped 3 record(s)"), "{out}");
    // Not a terminal: progress as plain lines on stderr, not a bar's escape codes.
    assert!(
        err.contains("remapped 0/3") && err.contains("remapped done"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let dry = cli_json(
        &app,
        &[
            "outbox",
            "replay",
            "--status",
            "dead",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(dry["rows"], 0);
    assert_eq!(dry["action"], "would replay");
}

#[tokio::test]
async fn erase_deletes_a_persons_records_and_names_no_one_in_the_audit() {
    let app = app_with_leads().await;
    let (ok, _, err) = cli(&app, &["erase"]).await;
    assert!(!ok && err.contains("--user"), "{err}");
    let erased = cli_json(
        &app,
        &["erase", "--email", "kavya.srinivasan@example.com", "--json"],
    )
    .await;
    assert_eq!(erased["inbound_records"], 1);
    assert_eq!(erased["outbox_rows"], 2);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE payload::text ILIKE '%kavya%'")
            .await,
        0
    );
    let target: String = sqlx::query_scalar(
        "SELECT target FROM admin_audit WHERE action = 'erase' AND role = 'cli'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(!target.contains("kavya"), "{target}");
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        4,
        "the other leads stay"
    );
}
