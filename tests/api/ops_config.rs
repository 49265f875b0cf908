//! The binary's configuration surface: bounds, secrets (environment or `_FILE`, never
//! flags), exit codes, messages that name what is wrong, global flags, JSON logs,
//! databases that only `serve`, `worker` and `migrate` create.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::bridge::{Bridge, binary, free_port};
use crate::helpers::{
    ADMIN_TOKEN, LICENSE, TestDb, admin_url, copy_example_mappings, example_mappings, fixture,
};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn database_url(name: &str) -> String {
    format!("{}/{name}", admin_url().rsplit_once('/').unwrap().0)
}

async fn database_exists(name: &str) -> bool {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&admin_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[test]
fn absurd_durations_sizes_and_counts_exit_2_naming_variable_and_range() {
    let output = binary()
        .arg("serve")
        .env("BRIDGE_MAPPINGS_DIR", example_mappings())
        .env("BRIDGE_RETRY_BASE", "20000y")
        .env("BRIDGE_MAX_BODY", "18446744073709551615")
        .env("BRIDGE_WORKER_CONCURRENCY", "100000")
        .env("BRIDGE_RETENTION", "1s")
        .env("WEBENGAGE_LIMIT_USERS_PER_MIN", "0")
        .env("BRIDGE_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    for expected in [
        "BRIDGE_RETRY_BASE (--retry-base): `20000y` is outside 10ms..=1h",
        "BRIDGE_MAX_BODY (--max-body): `18446744073709551615` is outside 1KiB..=256MiB",
        "BRIDGE_WORKER_CONCURRENCY (--concurrency): `100000` is outside 1..=256",
        "BRIDGE_RETENTION (--retention): `1s` is outside 1h..=3650d",
        "WEBENGAGE_LIMIT_USERS_PER_MIN (--limit-users-per-min): `0` is outside",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert_eq!(text.matches("BRIDGE_LOG_FORMAT").count(), 1, "{text}");
}

#[test]
fn missing_secret_files_exit_2_naming_variable_and_file() {
    for (variable, command) in [
        ("WEBENGAGE_API_KEY_FILE", "serve"),
        ("BRIDGE_ADMIN_TOKEN_FILE", "serve"),
        ("BRIDGE_VIEWER_TOKEN_FILE", "worker"),
        ("DATABASE_URL_FILE", "serve"),
        ("DATABASE_URL_FILE", "outbox"),
    ] {
        let mut cmd = binary();
        cmd.arg(command)
            .env("BRIDGE_MAPPINGS_DIR", example_mappings())
            .env(variable, "/nonexistent/secret");
        if command == "outbox" {
            cmd.arg("stats");
        }
        let output = cmd.output().unwrap();
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable} {command}: {text}"
        );
        assert!(
            text.contains(&format!("{variable}: cannot read /nonexistent/secret")),
            "{variable} {command}: {text}"
        );
    }
}

#[test]
fn secrets_are_not_accepted_as_flags() {
    for flag in [
        "--database-url",
        "--api-key",
        "--admin-token",
        "--viewer-token",
    ] {
        let output = binary()
            .args(["serve", flag, "s3cret"])
            .env("BRIDGE_MAPPINGS_DIR", example_mappings())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag} accepted");
        assert!(
            stderr(&output).contains("unexpected argument"),
            "{flag}: {}",
            stderr(&output)
        );
    }
    let help = binary().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("BRIDGE_ADMIN_TOKEN") && help.contains("NAME_FILE"),
        "{help}"
    );
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    for args in [
        &["--log-format", "json", "mappings", "check"][..],
        &["mappings", "--log-format", "json", "check"],
        &["mappings", "check", "--log-format", "json"],
    ] {
        let output = binary()
            .args(args)
            .arg("--dir")
            .arg(example_mappings())
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
}

#[tokio::test]
async fn read_only_commands_never_create_a_database_and_say_which_is_missing() {
    let name = format!("wb_test_{}", uuid::Uuid::new_v4().simple());
    for args in [
        &["outbox", "stats"][..],
        &["inbound", "list"],
        &["outbox", "list"],
    ] {
        let output = binary()
            .args(args)
            .env("DATABASE_URL", database_url(&name))
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "the database `{name}` does not exist on 127.0.0.1:5432"
            )),
            "{args:?}: {text}"
        );
        assert!(!database_exists(&name).await, "{args:?} created {name}");
    }
    // `migrate` creates it.
    let output = binary()
        .arg("migrate")
        .env("DATABASE_URL", database_url(&name))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(database_exists(&name).await);
    drop_database(&name).await;
}

async fn drop_database(name: &str) {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&admin_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[test]
fn a_connection_error_names_host_and_port_once() {
    let port = free_port();
    let output = binary()
        .args(["outbox", "stats"])
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/x"),
        )
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("cannot reach Postgres at 127.0.0.1:{port}")),
        "{text}"
    );
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn secrets_are_read_from_files_and_only_the_missing_credential_is_named() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (url_file, token_file) = (dir.path().join("url"), dir.path().join("token"));
    write(&url_file, &format!("{}\n", db.url));
    write(&token_file, &format!("{ADMIN_TOKEN}\n"));
    let bridge = Bridge::serve(&[
        ("DATABASE_URL_FILE", url_file.display().to_string()),
        ("BRIDGE_ADMIN_TOKEN_FILE", token_file.display().to_string()),
        (
            "BRIDGE_MAPPINGS_DIR",
            example_mappings().display().to_string(),
        ),
        ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
    ])
    .await;
    let http = reqwest::Client::new();
    let stats = http
        .get(format!("{}/admin/api/stats", bridge.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200, "the admin token from the file works");
    let ready: Value = http
        .get(format!("{}/readyz", bridge.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["database"]["ok"], true,
        "DATABASE_URL_FILE used: {ready}"
    );
    let reason = ready["delivery"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("WEBENGAGE_API_KEY is not set") && !reason.contains("LICENSE"),
        "{reason}"
    );
}

#[tokio::test]
async fn json_logs_are_one_json_object_a_line() {
    let db = TestDb::new().await;
    let mut bridge = Bridge::serve(&[
        ("DATABASE_URL", db.url.clone()),
        (
            "BRIDGE_MAPPINGS_DIR",
            example_mappings().display().to_string(),
        ),
        ("BRIDGE_LOG_FORMAT", "json".to_owned()),
    ])
    .await;
    let posted = reqwest::Client::new()
        .post(format!("{}/webhooks/leadsquared", bridge.address))
        .header("content-type", "application/json")
        .body(fixture("lsq_lead_create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    bridge.signal("TERM");
    assert!(bridge.wait_exit(Duration::from_secs(40)).await.success());
    let log = bridge.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"listening\"")),
        "{log}"
    );
}

/// A mapping's webhook secret from `NAME_FILE`, rotated by writing the file and sending
/// SIGHUP: nothing in the mappings folder changes, so only the signal reloads it.
#[tokio::test]
async fn sighup_reloads_the_mappings_and_their_secret_files() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = copy_example_mappings(dir.path());
    let file = mappings.join("leadsquared.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("  auth: none"),
        "leadsquared.yaml changed: update this test"
    );
    write(
        &file,
        &text.replacen(
            "  auth: none",
            "  auth: { header: { name: X-Webhook-Token, value_env: LSQ_TOKEN } }",
            1,
        ),
    );
    let secret = dir.path().join("lsq-token");
    write(&secret, "first-token\n");
    let bridge = Bridge::serve(&[
        ("DATABASE_URL", db.url.clone()),
        ("BRIDGE_MAPPINGS_DIR", mappings.display().to_string()),
        ("LSQ_TOKEN_FILE", secret.display().to_string()),
    ])
    .await;
    let post = |token: &'static str| {
        let url = format!("{}/webhooks/leadsquared", bridge.address);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("x-webhook-token", token)
                .body(fixture("lsq_lead_create.json"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post("first-token").await, 200);
    write(&secret, "second-token\n");
    // Nothing reloads without the signal: the folder did not change.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(post("second-token").await, 401);
    bridge.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while post("second-token").await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload; log:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(post("first-token").await, 401);
}
