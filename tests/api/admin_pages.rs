//! The support console's pages over HTTP: login, CSRF, masking, issues, no secrets.

use crate::helpers::{ADMIN_TOKEN, API_KEY, AppOptions, TestApp, VIEWER_TOKEN, fixture, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

async fn app_with_leads() -> TestApp {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    for (source, file) in [
        ("leadsquared", "lsq_lead_create.json"),
        ("salesforce-flow", "sf_flow_lead.json"),
    ] {
        let ok = app.post(source, "application/json", fixture(file)).await;
        assert_eq!(ok.status(), 200);
    }
    app
}

/// A browser-like client that does not follow redirects, so each answer can be checked.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in with a token; returns the `name=value` of the session cookie and its full header.
async fn login(app: &TestApp, token: &str) -> (String, String) {
    let answer = browser()
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("token", token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/admin/");
    let header = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = header.split(';').next().unwrap().to_owned();
    (pair, header)
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let answer = browser()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (answer.status(), answer.text().await.unwrap())
}

async fn submit(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> StatusCode {
    browser()
        .post(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap()
        .status()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn csrf_of(html: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
    re.captures(html).expect("a CSRF field")[1].to_owned()
}

async fn first_row(app: &TestApp, source: &str) -> i64 {
    sqlx::query_scalar("SELECT min(id) FROM outbox WHERE source = $1")
        .bind(source)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn audit_targets(app: &TestApp, action: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT role, target FROM admin_audit WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn login_issues_a_strict_http_only_cookie_and_refuses_wrong_tokens() {
    let app = app_with_leads().await;
    let (status, form) = page(&app, "", "/admin/login").await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"name="token""#));

    let (status, _) = page(&app, "", "/admin/").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "no session: off to the login form"
    );

    let wrong = browser()
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("token", "guess")]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().await.unwrap().contains("not valid"));

    let (cookie, header) = login(&app, ADMIN_TOKEN).await;
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(header.contains("Path=/admin"), "{header}");
    assert!(
        !header.contains(ADMIN_TOKEN),
        "the cookie never holds the token"
    );
    let (status, dashboard) = page(&app, &cookie, "/admin/").await;
    assert_eq!(status, 200);
    assert!(dashboard.contains("Dashboard"));
    assert!(dashboard.contains("signed in as <strong>admin</strong>"));

    let out = browser()
        .post(format!("{}/admin/logout", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_client() {
    let app = app_with_leads().await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let answer = browser()
            .post(format!("{}/admin/login", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[("token", "guess")]))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn actions_need_the_sessions_csrf_token() {
    let app = app_with_leads().await;
    let (cookie, _) = login(&app, ADMIN_TOKEN).await;
    let id = first_row(&app, "leadsquared").await;
    let cancel = format!("/admin/outbox/{id}/cancel");
    assert_eq!(
        submit(&app, &cookie, &cancel, &[]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        submit(&app, &cookie, &cancel, &[("csrf", "00ff")]).await,
        StatusCode::FORBIDDEN
    );
    // A token from another session does not fit this one.
    let (other, _) = login(&app, ADMIN_TOKEN).await;
    let (_, other_page) = page(&app, &other, &format!("/admin/outbox/{id}")).await;
    let (_, html) = page(&app, &cookie, &format!("/admin/outbox/{id}")).await;
    let (theirs, mine) = (csrf_of(&other_page), csrf_of(&html));
    if theirs != mine {
        assert_eq!(
            submit(&app, &cookie, &cancel, &[("csrf", &theirs)]).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'cancelled'")
            .await,
        0
    );

    assert_eq!(
        submit(&app, &cookie, &cancel, &[("csrf", &mine)]).await,
        StatusCode::SEE_OTHER
    );
    let (_, after) = page(
        &app,
        &cookie,
        &format!("/admin/outbox/{id}?notice=cancelled&n=1"),
    )
    .await;
    assert!(after.contains(r#"id="row-status">cancelled"#));
    assert!(after.contains("never be sent"));
    assert_eq!(
        audit_targets(&app, "cancel").await,
        [("admin".into(), format!("outbox {id}"))]
    );

    // A viewer's session may not act at all, token or not.
    let (viewer, _) = login(&app, VIEWER_TOKEN).await;
    let retry = format!("/admin/outbox/{id}/retry");
    assert_eq!(
        submit(&app, &viewer, &retry, &[("csrf", &mine)]).await,
        StatusCode::FORBIDDEN
    );
    // Scripts with the Bearer header need no CSRF token.
    let scripted = browser()
        .post(format!("{}{retry}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn viewers_see_masked_personal_data_until_they_reveal_it_which_is_audited() {
    let app = app_with_leads().await;
    let id = first_row(&app, "leadsquared").await;
    let row = format!("/admin/outbox/{id}");
    let (viewer, _) = login(&app, VIEWER_TOKEN).await;

    let (_, masked) = page(&app, &viewer, &row).await;
    for personal in [
        "rohan.deshpande@example.com",
        "9123456780",
        "Deshpande",
        "Sneha",
    ] {
        assert!(!masked.contains(personal), "{personal} shown to a viewer");
    }
    assert!(masked.contains("r***@example.com"));
    assert!(masked.contains("+91******6780"));
    assert!(
        audit_targets(&app, "reveal").await.is_empty(),
        "looking is not revealing"
    );

    let (_, search) = page(
        &app,
        &viewer,
        "/admin/outbox?q=rohan.deshpande%40example.com",
    )
    .await;
    assert!(
        search.contains(&format!(r#"href="/admin/outbox/{id}""#)),
        "found by email"
    );
    assert!(!search.contains("rohan.deshpande@example.com\n"));
    assert!(search.contains("r***@example.com"));

    let (_, one_field) = page(&app, &viewer, &format!("{row}?reveal=Mobile")).await;
    assert!(one_field.contains("+91-9123456780"));
    assert!(!one_field.contains("Deshpande"));
    let (_, all) = page(&app, &viewer, &format!("{row}?reveal=all")).await;
    assert!(all.contains("rohan.deshpande@example.com"));
    assert!(all.contains("Deshpande"));
    assert_eq!(
        audit_targets(&app, "reveal").await,
        [
            ("viewer".into(), format!("outbox {id} fields Mobile")),
            ("viewer".into(), format!("outbox {id}")),
        ]
    );
    let (_, dashboard) = page(&app, &viewer, "/admin/").await;
    assert!(
        dashboard.contains("reveal"),
        "the dashboard lists the reveals"
    );

    let (admin, _) = login(&app, ADMIN_TOKEN).await;
    let (_, plain) = page(&app, &admin, &row).await;
    assert!(plain.contains("rohan.deshpande@example.com"));
    assert!(!plain.contains("reveal all"));
    assert_eq!(
        audit_targets(&app, "reveal").await.len(),
        2,
        "admins reveal nothing"
    );
}

#[tokio::test]
async fn failures_are_grouped_by_cause_and_one_group_replays() {
    let app = app_with_leads().await;
    // Dead rows whose errors differ only by an id and an email: one cause per source.
    for (source, error) in [
        (
            "leadsquared",
            "HTTP 400: user 5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0 rejected (a@example.com)",
        ),
        (
            "salesforce-flow",
            "HTTP 400: user 00Q5j00000Hk5WdEAJ rejected (b@example.com)",
        ),
    ] {
        sqlx::query("UPDATE outbox SET status = 'dead', last_error = $2 WHERE source = $1")
            .bind(source)
            .bind(error)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE outbox SET last_error = last_error || ' 98765' WHERE id = (SELECT max(id) FROM outbox WHERE source = 'leadsquared')")
        .execute(&app.db.pool)
        .await
        .unwrap();
    // Two leads whose phone cannot be read: one warning cause with two records.
    for (id, phone) in [("p-1", "not a phone"), ("p-2", "call me")] {
        let mut lead: serde_json::Value =
            serde_json::from_slice(&fixture("lsq_lead_create.json")).unwrap();
        lead["ProspectID"] = json!(id);
        lead["Mobile"] = json!(phone);
        lead["Phone"] = json!(null);
        let ok = app
            .post(
                "leadsquared",
                "application/json",
                serde_json::to_vec(&lead).unwrap(),
            )
            .await;
        assert_eq!(ok.status(), 200);
    }
    let malformed = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_malformed.json"),
        )
        .await;
    assert_eq!(malformed.status(), 200);

    let issues = webengage_bridge::store::console::issues(&app.db.pool)
        .await
        .unwrap();
    let mut dead: Vec<(&str, &str, i64)> = issues
        .dead
        .iter()
        .map(|i| (i.source.as_str(), i.cause.as_str(), i.count))
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        [
            ("leadsquared", "HTTP 400: user <id> rejected (<email>)", 1),
            ("leadsquared", "HTTP 400: user <id> rejected (<email>) N", 1),
            (
                "salesforce-flow",
                "HTTP 400: user <id> rejected (<email>)",
                2
            ),
        ]
    );
    assert_eq!(issues.warnings.len(), 1, "{:?}", issues.warnings);
    assert_eq!(issues.warnings[0].count, 2);
    assert_eq!(
        issues.warnings[0].cause,
        "rule `lead-profile`: user.phone dropped: … is not a phone number (transform phone)"
    );
    assert_eq!(issues.inbound.len(), 1);
    assert!(
        issues.inbound[0].cause.starts_with("malformed: "),
        "{:?}",
        issues.inbound
    );

    let (cookie, _) = login(&app, ADMIN_TOKEN).await;
    let (_, html) = page(&app, &cookie, "/admin/issues").await;
    assert!(html.contains("is not a phone number"));
    assert!(html.contains("Replay all"));
    let rows_link = "/admin/issues/rows?kind=dead&source=salesforce-flow&cause=HTTP+400%3A+user+%3Cid%3E+rejected+%28%3Cemail%3E%29";
    let (status, rows) = page(&app, &cookie, rows_link).await;
    assert_eq!(status, 200);
    assert_eq!(rows.matches(r#"<span class="status dead">"#).count(), 2);

    let replay = submit(
        &app,
        &cookie,
        "/admin/issues/replay",
        &[
            ("csrf", &csrf_of(&html)),
            ("source", "salesforce-flow"),
            ("cause", "HTTP 400: user <id> rejected (<email>)"),
        ],
    )
    .await;
    assert_eq!(replay, StatusCode::SEE_OTHER);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE source = 'salesforce-flow' AND status = 'pending'"
        )
        .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE source = 'leadsquared' AND status = 'dead'")
            .await,
        2,
        "other groups stay dead"
    );
    let audited: (String, i64) =
        sqlx::query_as("SELECT target, rows FROM admin_audit WHERE action = 'replay'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        audited,
        (
            "issue dead source=salesforce-flow cause=HTTP 400: user <id> rejected (<email>)".into(),
            2
        )
    );
}

#[tokio::test]
async fn no_page_shows_the_api_key_or_a_token() {
    let app = app_with_leads().await;
    sqlx::query("UPDATE outbox SET status = 'dead', last_error = 'HTTP 400: bad' WHERE source = 'leadsquared'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let row = first_row(&app, "leadsquared").await;
    let inbound: i64 = sqlx::query_scalar("SELECT min(id) FROM inbound_records")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    for token in [ADMIN_TOKEN, VIEWER_TOKEN] {
        let (cookie, _) = login(&app, token).await;
        for path in [
            "/admin/login".to_owned(),
            "/admin/".to_owned(),
            "/admin/outbox".to_owned(),
            "/admin/outbox?q=example".to_owned(),
            format!("/admin/outbox/{row}"),
            format!("/admin/outbox/{row}?reveal=all"),
            format!("/admin/inbound/{inbound}"),
            "/admin/issues".to_owned(),
            "/admin/issues/rows?kind=dead&source=leadsquared&cause=HTTP+400%3A+bad".to_owned(),
        ] {
            let (status, html) = page(&app, &cookie, &path).await;
            assert_eq!(status, 200, "{path}");
            for secret in [API_KEY, ADMIN_TOKEN, VIEWER_TOKEN] {
                assert!(!html.contains(secret), "{path} shows a secret");
            }
        }
    }
}

#[tokio::test]
async fn pages_are_off_without_an_admin_token() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        admin_token: None,
        ..AppOptions::default()
    })
    .await;
    assert_eq!(page(&app, "", "/admin/login").await.0, 404);
    assert_eq!(page(&app, "", "/admin/").await.0, 404);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = app_with_leads().await;
    let (cookie, _) = login(&app, ADMIN_TOKEN).await;
    assert_eq!(page(&app, &cookie, "/admin/").await.0, 200);
    let out = browser()
        .post(format!("{}/admin/logout", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // A copy of the old cookie (kept by an attacker, or a browser that ignored the
    // removal) opens nothing any more.
    let (status, _) = page(&app, &cookie, "/admin/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the old cookie still works");
    let id = first_row(&app, "leadsquared").await;
    assert_eq!(
        submit(&app, &cookie, &format!("/admin/outbox/{id}/cancel"), &[]).await,
        StatusCode::SEE_OTHER,
        "sent to the login form"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'cancelled'")
            .await,
        0
    );
}

#[tokio::test]
async fn sessions_are_keyed_by_a_random_stored_key_not_by_the_token() {
    // Two deployments with the same admin token: a session of one opens nothing on the
    // other, as it would if the key were derived from the token.
    let one = app_with_leads().await;
    let other = app_with_leads().await;
    let (cookie, _) = login(&one, ADMIN_TOKEN).await;
    assert_eq!(page(&one, &cookie, "/admin/").await.0, 200);
    assert_eq!(
        page(&other, &cookie, "/admin/").await.0,
        StatusCode::SEE_OTHER
    );
    let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM admin_keys")
        .fetch_all(&one.db.pool)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].len() >= 30, "a key of {} bytes", keys[0].len());
    let other_key: Vec<u8> = sqlx::query_scalar("SELECT key FROM admin_keys")
        .fetch_one(&other.db.pool)
        .await
        .unwrap();
    assert_ne!(keys[0], other_key);
    // The cookie is an opaque id: neither the role nor the token is in it.
    let value = cookie.split_once('=').unwrap().1;
    assert!(
        !value.contains("admin") && !value.contains(ADMIN_TOKEN),
        "{value}"
    );
}

#[tokio::test]
async fn the_api_refuses_a_session_cookie_so_no_site_can_forge_api_writes() {
    let app = app_with_leads().await;
    let (cookie, _) = login(&app, ADMIN_TOKEN).await;
    let id = first_row(&app, "leadsquared").await;
    for (method, path) in [
        (
            reqwest::Method::POST,
            format!("/admin/api/outbox/{id}/cancel"),
        ),
        (reqwest::Method::POST, "/admin/api/outbox/replay".to_owned()),
        (reqwest::Method::GET, "/admin/api/outbox".to_owned()),
    ] {
        let answer = browser()
            .request(method, format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'cancelled'")
            .await,
        0
    );
}

#[tokio::test]
async fn viewers_see_no_names_in_raw_bodies_or_in_the_issues_view() {
    let app = app_with_leads().await;
    let malformed = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_malformed.json"),
        )
        .await;
    assert_eq!(malformed.status(), 200);
    let raw: i64 = sqlx::query_scalar("SELECT id FROM inbound_records WHERE status = 'malformed'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    // A record whose mapping error quotes a CRM value.
    sqlx::query(
        "UPDATE inbound_records SET status = 'failed',
                error = 'rule `lead-profile`: user.first_name: \"Rohan Deshpande\" is not a number'
         WHERE source = 'salesforce-flow'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (viewer, _) = login(&app, VIEWER_TOKEN).await;
    for path in [
        format!("/admin/inbound/{raw}"),
        "/admin/issues".to_owned(),
        "/admin/issues/rows?kind=inbound&source=salesforce-flow&cause=failed%3A+rule+%60lead-profile%60%3A+user.first_name%3A+%E2%80%A6+is+not+a+number".to_owned(),
    ] {
        let (status, html) = page(&app, &viewer, &path).await;
        assert_eq!(status, 200, "{path}");
        for personal in ["Rohan", "Deshpande", "9876543210", "rohan.deshpande@example.com"] {
            assert!(!html.contains(personal), "{path} shows {personal}");
        }
    }
    let (_, raw_page) = page(&app, &viewer, &format!("/admin/inbound/{raw}")).await;
    assert!(raw_page.contains("R***"), "{raw_page}");
    let (_, issues) = page(&app, &viewer, "/admin/issues").await;
    assert!(issues.contains("… is not a number"), "{issues}");
    let (_, rows) = page(&app, &viewer, "/admin/issues/rows?kind=inbound&source=salesforce-flow&cause=failed%3A+rule+%60lead-profile%60%3A+user.first_name%3A+%E2%80%A6+is+not+a+number").await;
    assert!(
        rows.contains("inbound "),
        "the group lists its record: {rows}"
    );
}

#[tokio::test]
async fn a_page_action_that_changes_nothing_answers_409_with_the_reason() {
    let app = app_with_leads().await;
    let id = first_row(&app, "leadsquared").await;
    sqlx::query("UPDATE outbox SET status = 'delivered', delivered_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (cookie, _) = login(&app, ADMIN_TOKEN).await;
    let (_, html) = page(&app, &cookie, &format!("/admin/outbox/{id}")).await;
    assert!(html.contains(&format!(r#"action="/admin/outbox/{id}/resend""#)));
    assert!(!html.contains(&format!(r#"action="/admin/outbox/{id}/retry""#)));
    let answer = browser()
        .post(format!("{}/admin/outbox/{id}/retry", app.address))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", &csrf_of(&html))]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let text = answer.text().await.unwrap();
    assert!(text.contains("already delivered"), "{text}");
    assert!(text.contains(&format!("/admin/outbox/{id}")), "a way back");
}

#[tokio::test]
async fn a_search_the_console_cannot_answer_is_a_400_page() {
    let app = app_with_leads().await;
    let (cookie, _) = login(&app, VIEWER_TOKEN).await;
    for q in ["a%00b", "ab", &"x".repeat(201)] {
        let (status, html) = page(&app, &cookie, &format!("/admin/outbox?q={q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(html.contains(r#"id="error""#), "{html}");
    }
    let (status, _) = page(&app, &cookie, "/admin/inbound?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failed_records_are_listed_and_re_mapped_in_one_action_with_progress() {
    let app = app_with_leads().await;
    sqlx::query(
        "UPDATE inbound_records SET status = 'failed', error = 'rule `x`: user.phone: \"bad\" is not a number'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (viewer, _) = login(&app, VIEWER_TOKEN).await;
    let (status, list) = page(&app, &viewer, "/admin/inbound?status=failed").await;
    assert_eq!(status, 200);
    assert_eq!(list.matches(r#"<span class="status failed">"#).count(), 2);
    assert!(!list.contains("remap-all"), "viewers cannot act");

    let (admin, _) = login(&app, ADMIN_TOKEN).await;
    let (_, list) = page(
        &app,
        &admin,
        "/admin/inbound?status=failed&source=leadsquared",
    )
    .await;
    assert!(list.contains("Re-map all 1 matching"), "{list}");
    let (_, issues) = page(&app, &admin, "/admin/issues").await;
    assert_eq!(
        issues.matches("Re-map all</button>").count(),
        2,
        "one per failed group"
    );
    let answer = browser()
        .post(format!("{}/admin/issues/remap", app.address))
        .header("cookie", &admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", &csrf_of(&issues)),
            ("source", "salesforce-flow"),
            ("cause", "failed: rule `x`: user.phone: … is not a number"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let job = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(job.starts_with("/admin/jobs/"), "{job}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, html) = page(&app, &viewer, &job).await;
        if html.contains(r#"id="job-state">done"#) {
            assert!(html.contains(r#"id="job-progress">1 / 1"#), "{html}");
            break;
        }
        assert!(
            html.contains("http-equiv=\"refresh\""),
            "a running job refreshes"
        );
        assert!(std::time::Instant::now() < deadline, "{html}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'failed'")
            .await,
        1,
        "only the group's record was re-mapped"
    );
}

#[tokio::test]
async fn a_replayed_group_shows_as_being_retried_until_its_rows_are_done() {
    let app = app_with_leads().await;
    sqlx::query("UPDATE outbox SET status = 'dead', last_error = 'HTTP 400: bad' WHERE source = 'leadsquared'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (admin, _) = login(&app, ADMIN_TOKEN).await;
    let (_, issues) = page(&app, &admin, "/admin/issues").await;
    assert!(!issues.contains("being retried"));
    let replayed = submit(
        &app,
        &admin,
        "/admin/issues/replay",
        &[
            ("csrf", &csrf_of(&issues)),
            ("source", "leadsquared"),
            ("cause", "HTTP 400: bad"),
        ],
    )
    .await;
    assert_eq!(replayed, StatusCode::SEE_OTHER);
    let (_, issues) = page(&app, &admin, "/admin/issues").await;
    assert!(issues.contains("being retried (2)"), "{issues}");
    // Replaying it again changes nothing: 409, the rows are already on their way.
    let again = submit(
        &app,
        &admin,
        "/admin/issues/replay",
        &[
            ("csrf", &csrf_of(&issues)),
            ("source", "leadsquared"),
            ("cause", "HTTP 400: bad"),
        ],
    )
    .await;
    assert_eq!(again, StatusCode::CONFLICT);
    sqlx::query(
        "UPDATE outbox SET status = 'delivered', delivered_at = now() WHERE source = 'leadsquared'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (_, issues) = page(&app, &admin, "/admin/issues").await;
    assert!(
        !issues.contains("HTTP 400: bad"),
        "a delivered group is gone"
    );
}

#[tokio::test]
async fn a_rows_attempt_count_is_the_number_of_attempts_it_lists() {
    let app = app_with_leads().await;
    let id = first_row(&app, "leadsquared").await;
    // Two charged attempts and a wait for the rate limit, which is listed, not charged.
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, http_status, outcome, latency_ms, request_id)
         SELECT id, s, o, 10, request_id FROM outbox,
              (VALUES (500, 'retry'), (429, 'rate_limited'), (500, 'retry')) AS a(s, o)
         WHERE id = $1",
    )
    .bind(id)
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE outbox SET attempts = 2 WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (cookie, _) = login(&app, VIEWER_TOKEN).await;
    let (_, html) = page(&app, &cookie, &format!("/admin/outbox/{id}")).await;
    assert!(
        html.contains(
            r#"<dd id="attempts">3 <span class="muted">(2 counted toward the retry limit"#
        ),
        "{html}"
    );
}
