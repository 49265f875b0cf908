//! `import`: exported files through the example mappings into the outbox, with the
//! dedupe keys and the stale fence of webhooks, a rejects file, and resuming.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use webengage_bridge::import::{self, ImportOptions, Summary};
use webengage_bridge::mapping::MappingSet;
use webengage_bridge::support::{Role, imports};

use crate::helpers::{AppOptions, TestApp, TestDb, example_mappings, fixture, spawn_app};

pub(crate) const SF_HEADER: &str = "Id,FirstName,LastName,Email,Company,LastModifiedDate,LeadSource,Status,HasOptedOutOfEmail,Product_Interest__c";

pub(crate) fn sf_row(id: &str, email: &str, modified: &str) -> String {
    format!(
        "{id},Meera,Iyer,{email},Rao & Iyer Consulting,{modified},Web,Open - Not Contacted,false,Data Science Bootcamp"
    )
}

pub(crate) fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

pub(crate) fn options(source: &str, files: &[&Path]) -> ImportOptions {
    ImportOptions {
        source: source.to_owned(),
        format: None,
        dry_run: false,
        limit: None,
        quiet: true,
        object: None,
        files: files.iter().map(|f| f.to_path_buf()).collect(),
    }
}

pub(crate) async fn run(pool: &sqlx::PgPool, options: &ImportOptions) -> Summary {
    let set = MappingSet::load_dir(&example_mappings()).unwrap();
    let mapping = Arc::clone(set.get(&options.source).unwrap());
    import::run(Some(pool), mapping, options).await.unwrap()
}

/// Posts the Salesforce fixture as a live webhook; it must be stored.
async fn post_live_lead(app: &TestApp) {
    let response = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn bodies(pool: &sqlx::PgPool) -> Vec<Value> {
    sqlx::query_scalar("SELECT body FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_csv_and_a_jsonl_file_become_the_webhooks_bodies() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "leads.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Hk4TbEAJ",
                "Meera.Iyer@Example.com",
                "2024-01-15T10:30:04.000Z",
            ),
        ],
    );
    let summary = run(&db.pool, &options("salesforce", &[&csv])).await;
    assert_eq!((summary.counts.rows, summary.counts.accepted), (1, 1));
    let jsonl = write(dir.path(), "leads.jsonl.gz", &[]);
    // Gzipped JSON lines, read directly.
    let line = r#"{"ProspectID":"p-1","EmailAddress":"Asha@Example.com","FirstName":"Asha","ModifiedOn":"2024-02-01 09:00:00","ProspectStage":"Customer","Score":"42","mx_Course_Interest":"NEET"}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, format!("{line}\n").as_bytes()).unwrap();
    std::fs::write(&jsonl, gz.finish().unwrap()).unwrap();
    let summary = run(&db.pool, &options("leadsquared", &[&jsonl])).await;
    assert_eq!((summary.counts.rows, summary.counts.accepted), (1, 1));

    assert_eq!(
        bodies(&db.pool).await,
        vec![
            json!({"userId": "meera.iyer@example.com", "firstName": "Meera", "lastName": "Iyer",
                   "email": "meera.iyer@example.com", "company": "Rao & Iyer Consulting", "emailOptIn": true,
                   "attributes": {"sf_lead_id": "00Q5j00000Hk4TbEAJ", "lead_source": "Web",
                                  "lead_status": "Open - Not Contacted", "product_interest": "Data Science Bootcamp"}}),
            json!({"userId": "meera.iyer@example.com", "eventName": "Lead Synced", "eventTime": "2024-01-15T10:30:04+0000",
                   "eventData": {"sf_lead_id": "00Q5j00000Hk4TbEAJ", "status": "Open - Not Contacted", "lead_source": "Web"}}),
            json!({"userId": "asha@example.com", "firstName": "Asha", "email": "asha@example.com",
                   "attributes": {"lsq_prospect_id": "p-1", "lead_stage": "Customer", "lead_score": 42, "course_interest": "NEET"}}),
            json!({"userId": "asha@example.com", "eventName": "Lead Synced", "eventTime": "2024-02-01T09:00:00+0000",
                   "eventData": {"stage": "Customer"}}),
            json!({"userId": "asha@example.com", "eventName": "Lead Stage Changed", "eventTime": "2024-02-01T09:00:00+0000",
                   "eventData": {"stage": "Customer"}}),
        ]
    );
    // Imported rows carry their import and wait behind live traffic.
    let tagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o JOIN inbound_records i ON i.id = o.inbound_id
         WHERE i.import_id IS NOT NULL AND o.priority = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tagged, 5);
}

#[tokio::test]
async fn the_same_file_twice_or_a_webhook_already_stored_stores_nothing_twice() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let lead: Value = serde_json::from_slice(&fixture("lsq_lead_create.json")).unwrap();
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
    let mut other = lead.clone();
    other["ProspectID"] = json!("another-lead");
    other["EmailAddress"] = json!("another@example.com");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "leads.json",
        &[json!([lead, other]).to_string()],
    );
    let before = bodies(&app.db.pool).await.len();

    let first = run(&app.db.pool, &options("leadsquared", &[&file])).await;
    assert_eq!(
        (first.counts.accepted, first.counts.duplicates),
        (1, 1),
        "the webhook's lead is a duplicate"
    );
    let after_first = bodies(&app.db.pool).await.len();
    assert_eq!(after_first, before + 2, "the other lead's user and event");

    let second = run(&app.db.pool, &options("leadsquared", &[&file])).await;
    assert_eq!((second.counts.accepted, second.counts.duplicates), (0, 2));
    assert_ne!(
        second.import_id, first.import_id,
        "a finished import run again is a new one"
    );
    assert_eq!(bodies(&app.db.pool).await.len(), after_first);
}

#[tokio::test]
async fn an_export_older_than_a_live_webhook_never_overwrites_it() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    // The webhook carries the lead as of 10:30:04.
    post_live_lead(&app).await;
    let before = bodies(&app.db.pool).await.len();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "export.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Hk4TbEAJ",
                "old.address@example.com",
                "2024-01-10T08:00:00.000Z",
            ),
            sf_row(
                "00Q5j00000Zz9ZzEAJ",
                "newer@example.com",
                "2024-01-10T08:00:00.000Z",
            ),
        ],
    );
    let summary = run(&app.db.pool, &options("salesforce", &[&file])).await;
    assert_eq!((summary.counts.stale, summary.counts.accepted), (1, 1));
    let added = &bodies(&app.db.pool).await[before..];
    assert_eq!(added.len(), 2);
    assert!(
        added.iter().all(|b| b["userId"] == "newer@example.com"),
        "{added:?}"
    );
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inbound_records WHERE status = 'stale' AND import_id IS NOT NULL",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(stale, 1);
}

/// Chunks are stored two at a time; rows of one CRM record or one user in different
/// chunks must still be decided in the file's order.
#[tokio::test]
async fn rows_of_one_record_or_user_in_different_chunks_keep_the_files_order() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let lead = |i: usize| format!("00Q5j{i:010}AAA");
    let mut lines = vec![SF_HEADER.to_owned()];
    for i in 0..3 * import::BATCH_ROWS {
        lines.push(sf_row(
            &lead(i),
            &format!("lead{i}@example.com"),
            "2024-01-15T10:30:04.000Z",
        ));
    }
    let chunk = import::BATCH_ROWS;
    // An older export of lead 100, a chunk later: stale.
    lines[1 + chunk + 100] = sf_row(
        &lead(100),
        "lead100@example.com",
        "2024-01-10T08:00:00.000Z",
    );
    // Another lead of the user of a lead in the second chunk, in the third: queued
    // behind that user's rows.
    let user = format!("lead{}@example.com", chunk + 200);
    lines[1 + 2 * chunk + 100] = sf_row(&lead(9_000_000), &user, "2024-01-15T10:30:04.000Z");
    let file = write(dir.path(), "leads.csv", &lines);

    let summary = run(&db.pool, &options("salesforce", &[&file])).await;
    assert_eq!(
        (summary.counts.accepted, summary.counts.stale),
        (3 * import::BATCH_ROWS as u64 - 1, 1)
    );
    let stale: String = sqlx::query_scalar(
        "SELECT payload->'sObject'->>'LastModifiedDate' FROM inbound_records WHERE status = 'stale'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stale, "2024-01-10T08:00:00.000Z");
    let heads: Vec<(Option<String>, bool)> =
        sqlx::query_as("SELECT user_id, head FROM outbox WHERE user_id = $1 ORDER BY id")
            .bind(&user)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(heads.len(), 4, "two leads, a user and an event each");
    assert_eq!(
        heads.iter().filter(|(_, head)| *head).count(),
        1,
        "one head per user, the first row: {heads:?}"
    );
    assert!(heads[0].1);
}

#[tokio::test]
async fn bad_rows_go_to_the_rejects_file_with_their_line_and_reason() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "leads.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Hk4TbEAJ",
                "a@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
            sf_row(
                "00Q5j00000Hk4TcEAJ",
                "not-an-email",
                "2024-01-15T10:30:04.000Z",
            ),
            "00Q5j00000Hk4TdEAJ,only,three".into(),
            sf_row(
                "a0X5j00000Hk4TeEAJ",
                "c@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
        ],
    );
    let summary = run(&db.pool, &options("salesforce", &[&file])).await;
    assert_eq!((summary.counts.accepted, summary.counts.rejected), (1, 3));
    let rejects_path = dir.path().join("leads.csv.rejects.csv");
    assert_eq!(summary.rejects_files, vec![rejects_path.clone()]);
    let rejects = std::fs::read_to_string(&rejects_path).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(
        lines[0],
        format!("rejected_line,rejected_reason,{SF_HEADER}")
    );
    assert_eq!(
        lines[1],
        format!(
            "3,\"rule `lead-profile` failed: user.userId: \"\"not-an-email\"\" is not an e-mail address (transform email)\",{}",
            sf_row(
                "00Q5j00000Hk4TcEAJ",
                "not-an-email",
                "2024-01-15T10:30:04.000Z"
            )
        )
    );
    assert_eq!(
        lines[2],
        "4,3 cells where the header has 10 columns,00Q5j00000Hk4TdEAJ,only,three"
    );
    assert!(
        lines[3].starts_with("5,\"cannot tell the object type from the Id `a0X5j00000Hk4TeEAJ`"),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 4);

    // Fixed, the rejects file imports as it is (its own two columns are dropped).
    let fixed = rejects
        .replace("not-an-email", "b@example.com")
        .replace("a0X5j", "00Q5j");
    std::fs::write(&rejects_path, fixed).unwrap();
    let again = run(&db.pool, &options("salesforce", &[&rejects_path])).await;
    assert_eq!((again.counts.accepted, again.counts.rejected), (2, 1));
}

#[tokio::test]
async fn an_interrupted_import_continues_where_it_stopped() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![SF_HEADER.to_owned()];
    for i in 0..10 {
        let email = if i % 4 == 1 {
            "broken".to_owned()
        } else {
            format!("lead{i}@example.com")
        };
        lines.push(sf_row(
            &format!("00Q5j0000000{i:03}AAA"),
            &email,
            "2024-01-15T10:30:04.000Z",
        ));
    }
    let file = write(dir.path(), "leads.csv", &lines);
    // Stopped after 4 rows (as Ctrl-C or a kill would stop it after a committed batch).
    let first = run(
        &db.pool,
        &ImportOptions {
            limit: Some(4),
            ..options("salesforce", &[&file])
        },
    )
    .await;
    assert!(first.limited);
    assert_eq!(
        (
            first.counts.rows,
            first.counts.accepted,
            first.counts.rejected
        ),
        (4, 3, 1)
    );
    // A reject written after the last commit (the run died before committing it) is
    // not in the file's committed length.
    let rejects = dir.path().join("leads.csv.rejects.csv");
    let committed = std::fs::read_to_string(&rejects).unwrap();
    std::fs::write(&rejects, format!("{committed}99,uncommitted,x\n")).unwrap();

    let rest = run(&db.pool, &options("salesforce", &[&file])).await;
    assert_eq!(
        rest.import_id, first.import_id,
        "the same command continues the same import"
    );
    assert_eq!(rest.resumed_at, 4);
    assert_eq!(
        (
            rest.counts.rows,
            rest.counts.accepted,
            rest.counts.duplicates,
            rest.counts.rejected
        ),
        (6, 4, 0, 2)
    );
    let listed = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = listed
        .lines()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(lines, ["rejected_line", "3", "7", "11"]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'user'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(users, 7, "every good lead once");
    let detail = imports::show(&db.pool, rest.import_id.unwrap())
        .await
        .unwrap();
    assert_eq!(detail.import.state.as_str(), "finished");
    assert_eq!(
        (
            detail.import.rows_done,
            detail.import.accepted,
            detail.import.rejected
        ),
        (10, 7, 3)
    );
}

#[tokio::test]
async fn cancelling_an_import_cancels_its_undelivered_rows_only() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "leads.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Zz9ZzEAJ",
                "x@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
            sf_row(
                "00Q5j00000Zz9ZyEAJ",
                "y@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
        ],
    );
    // The import stops after its first row; a webhook arrives; the import continues:
    // the webhook's rows lie between the import's.
    let first = run(
        &app.db.pool,
        &ImportOptions {
            limit: Some(1),
            ..options("salesforce", &[&file])
        },
    )
    .await;
    post_live_lead(&app).await;
    let summary = run(&app.db.pool, &options("salesforce", &[&file])).await;
    let id = summary.import_id.unwrap();
    assert_eq!(first.import_id, Some(id));
    assert!(matches!(
        imports::cancel(&app.db.pool, Role::Viewer, id).await,
        Err(webengage_bridge::support::SupportError::ReadOnly)
    ));
    assert_eq!(
        imports::cancel(&app.db.pool, Role::Cli, id).await.unwrap(),
        4
    );
    let cancelled = app
        .count("SELECT count(*) FROM outbox WHERE status = 'cancelled'")
        .await;
    let live = app
        .count("SELECT count(*) FROM outbox WHERE status = 'pending'")
        .await;
    assert_eq!((cancelled, live), (4, 2), "the webhook's rows wait still");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM admin_audit WHERE action = 'cancel' AND target = 'import {id}' AND rows = 4")).await,
        1
    );
    assert!(imports::cancel(&app.db.pool, Role::Cli, 999).await.is_err());
}

#[tokio::test]
async fn the_command_imports_lists_and_shows() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "leads.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Hk4TbEAJ",
                "a@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
        ],
    );
    let cli = |args: Vec<String>| {
        let url = db.url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_webengage-bridge"))
                    .args(&args)
                    .env("DATABASE_URL", url)
                    .env("BRIDGE_MAPPINGS_DIR", example_mappings())
                    .env("RUST_LOG", "warn")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let file = file.display().to_string();
    let dry = cli(args(&[
        "import",
        "--source",
        "salesforce",
        "--dry-run",
        &file,
    ]))
    .await;
    assert!(dry.status.success());
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(out.starts_with("dry run done: 1 rows: 1 accepted"), "{out}");
    assert!(out.contains("\"eventName\": \"Lead Synced\""), "{out}");

    let done = cli(args(&["import", "--source", "salesforce", &file])).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).starts_with("import 1 done: 1 rows: 1 accepted"));
    let list = cli(args(&["import", "list", "--json"])).await;
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["state"], "finished");
    let show = cli(args(&["import", "show", "1", "--json"])).await;
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(show["accepted"], 1);
    assert_eq!(show["outbox"]["pending"], 2);
    let missing = cli(args(&["import", "--source", "salesforce"])).await;
    assert!(!missing.status.success(), "a file is required");
}

#[tokio::test]
async fn the_admin_api_and_the_console_list_show_and_cancel_imports() {
    use crate::helpers::{ADMIN_TOKEN, VIEWER_TOKEN};
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "leads.csv",
        &[
            SF_HEADER.into(),
            sf_row(
                "00Q5j00000Hk4TbEAJ",
                "a@example.com",
                "2024-01-15T10:30:04.000Z",
            ),
        ],
    );
    let id = run(&app.db.pool, &options("salesforce", &[&file]))
        .await
        .import_id
        .unwrap();
    let get = |path: String, token: &'static str| {
        app.http
            .get(format!("{}{path}", app.address))
            .bearer_auth(token)
            .send()
    };
    let list: Value = get("/admin/api/imports".into(), VIEWER_TOKEN)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["source"], "salesforce");
    let one: Value = get(format!("/admin/api/imports/{id}"), VIEWER_TOKEN)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (one["accepted"].clone(), one["outbox"]["pending"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        get("/admin/api/imports/999".into(), ADMIN_TOKEN)
            .await
            .unwrap()
            .status(),
        404
    );

    let cancel = |token: &'static str| {
        app.http
            .post(format!("{}/admin/api/imports/{id}/cancel", app.address))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(cancel(VIEWER_TOKEN).await.unwrap().status(), 403);
    let answer: Value = cancel(ADMIN_TOKEN).await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"cancelled": 2}));

    let page = get("/admin/imports".into(), ADMIN_TOKEN)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("action=\"/admin/imports/{id}/cancel\"")),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"status finished\">finished</span>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_live_webhook_overtakes_an_import_backlog() {
    use std::time::Duration;
    use webengage_bridge::store::outbox::{self, Due};
    use webengage_bridge::webengage::OperationKind;
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![SF_HEADER.to_owned()];
    for i in 0..50 {
        lines.push(sf_row(
            &format!("00Q5j0000000{i:03}AAA"),
            &format!("lead{i}@example.com"),
            "2024-01-15T10:30:04.000Z",
        ));
    }
    let file = write(dir.path(), "backlog.csv", &lines);
    assert_eq!(
        run(&app.db.pool, &options("salesforce", &[&file]))
            .await
            .counts
            .accepted,
        50
    );
    // The webhook arrives after the whole backlog was queued.
    post_live_lead(&app).await;

    // Each user's event waits behind its user update (per-user order): the user rows
    // are the heads a claim can take.
    let claimed = outbox::claim_due_of(
        &app.db.pool,
        1,
        Duration::from_secs(30),
        Due::Fresh,
        Some(OperationKind::User),
    )
    .await
    .unwrap();
    assert_eq!(
        claimed[0].user_id.as_deref(),
        Some("meera.iyer@example.com")
    );
    // Then the import's rows, in the order they were queued.
    let next = outbox::claim_due_of(
        &app.db.pool,
        1,
        Duration::from_secs(30),
        Due::Fresh,
        Some(OperationKind::User),
    )
    .await
    .unwrap();
    assert_eq!(next[0].user_id.as_deref(), Some("lead0@example.com"));
}
