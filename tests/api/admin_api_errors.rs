//! Every error status of the admin API answers `{"error": {"code", "message"}}`, and a
//! bulk action whose body cannot be read changes nothing.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, VIEWER_TOKEN, fixture, spawn_app};

async fn app_with_dead_rows() -> TestApp {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let lead = fixture("lsq_lead_create.json");
    assert_eq!(
        app.post("leadsquared", "application/json", lead)
            .await
            .status(),
        200
    );
    sqlx::query("UPDATE outbox SET status = 'dead', last_error = 'test'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    app
}

async fn dead_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM outbox WHERE status = 'dead'")
        .await
}

/// The status and the JSON error of an answer, failing if the body is not that shape.
async fn error_of(answer: reqwest::Response) -> (u16, String) {
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = answer.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{status}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: {text}"))
        .to_owned();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    (status, code)
}

fn request(app: &TestApp, method: &str, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method.parse().unwrap(), format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN)
}

#[tokio::test]
async fn routing_and_access_errors_are_json() {
    let app = app_with_dead_rows().await;
    let id: i64 = app.count("SELECT min(id) FROM outbox").await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            request(&app, "GET", "/admin/api/nothing/here"),
            404,
            "not_found",
        ),
        (request(&app, "GET", "/admin/api"), 404, "not_found"),
        (
            request(&app, "GET", "/admin/api/outbox/abc"),
            404,
            "not_found",
        ),
        (
            request(&app, "DELETE", "/admin/api/stats"),
            405,
            "method_not_allowed",
        ),
        (
            request(&app, "GET", "/admin/api/outbox/replay"),
            405,
            "method_not_allowed",
        ),
        (
            request(&app, "PUT", "/admin/api/outbox/1/retry"),
            405,
            "method_not_allowed",
        ),
        (
            request(&app, "GET", "/admin/api/outbox?limit=many"),
            400,
            "bad_request",
        ),
        (
            app.http
                .get(format!("{}/admin/api/stats", app.address))
                .bearer_auth("wrong"),
            401,
            "unauthorized",
        ),
        (
            app.http
                .post(format!("{}/admin/api/outbox/{id}/cancel", app.address))
                .bearer_auth(VIEWER_TOKEN),
            403,
            "forbidden",
        ),
        // A dead row cannot be resent: only a delivered one.
        (
            request(&app, "POST", &format!("/admin/api/outbox/{id}/resend")),
            409,
            "conflict",
        ),
    ];
    for (builder, status, code) in cases {
        let answer = builder.send().await.unwrap();
        let url = answer.url().clone();
        let allow = answer.headers().get("allow").cloned();
        let authenticate = answer.headers().get("www-authenticate").cloned();
        assert_eq!(error_of(answer).await, (status, code.to_owned()), "{url}");
        if status == 405 {
            assert!(allow.is_some(), "{url}: 405 without Allow");
        }
        if status == 401 {
            assert_eq!(authenticate.unwrap(), "Bearer realm=\"admin api\"");
        }
    }
    let anonymous = app
        .http
        .get(format!("{}/admin/api/nothing", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 404);
}

#[tokio::test]
async fn bad_and_oversized_bodies_are_json_and_change_nothing() {
    let app = app_with_dead_rows().await;
    let before = dead_rows(&app).await;
    assert!(before > 0);
    let big = format!("{{\"source\": \"{}\"}}", "x".repeat(100 * 1024));
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            request(&app, "POST", "/admin/api/outbox/replay").body("{\"status\": \"dead\""),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/outbox/replay").body("status=dead"),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/outbox/replay").body(vec![0xff, 0xfe, b'{']),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/outbox/replay").json(&json!({"statuz": "dead"})),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/outbox/replay").body(big.clone()),
            413,
            "payload_too_large",
        ),
        (
            request(&app, "POST", "/admin/api/inbound/remap").body("[1, 2"),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/erase")
                .header("content-type", "application/json")
                .body("{\"email\": "),
            400,
            "bad_request",
        ),
        (
            request(&app, "POST", "/admin/api/erase")
                .header("content-type", "application/json")
                .body(big),
            413,
            "payload_too_large",
        ),
        (
            request(&app, "POST", "/admin/api/erase")
                .header("content-type", "text/plain")
                .body("{\"email\": \"a@example.com\"}"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (builder, status, code) in cases {
        let answer = builder.send().await.unwrap();
        let url = answer.url().clone();
        assert_eq!(error_of(answer).await, (status, code.to_owned()), "{url}");
    }
    assert_eq!(
        dead_rows(&app).await,
        before,
        "a refused body replayed rows"
    );
    // No body at all is the documented default: every dead row.
    let replayed: Value = request(&app, "POST", "/admin/api/outbox/replay")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed, json!({ "replayed": before }));
}

/// A body that breaks off (the client promised more bytes than it sent) is unreadable:
/// it must never count as "no body", which would replay every dead row.
#[tokio::test]
async fn a_replay_body_that_breaks_off_replays_nothing() {
    let app = app_with_dead_rows().await;
    let before = dead_rows(&app).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /admin/api/outbox/replay HTTP/1.1\r\nHost: bridge\r\n\
             Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"status\""
        )
        .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    // The connection may be dropped without an answer; if one comes, it is a JSON 400.
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
    assert_eq!(dead_rows(&app).await, before, "a broken body replayed rows");
}

/// The pages answer their own errors as HTML pages; what is no page at all, and what
/// actix refuses before a page runs, is JSON like the rest.
#[tokio::test]
async fn unknown_admin_pages_are_json_too() {
    let app = app_with_dead_rows().await;
    for (method, path, status, code) in [
        ("GET", "/admin/nothing", 404, "not_found"),
        ("GET", "/admin/outbox/abc", 404, "not_found"),
        ("DELETE", "/admin/outbox", 404, "not_found"),
    ] {
        let answer = request(&app, method, path).send().await.unwrap();
        assert_eq!(
            error_of(answer).await,
            (status, code.to_owned()),
            "{method} {path}"
        );
    }
    let page = request(&app, "GET", "/admin").send().await.unwrap();
    assert_eq!(page.status(), 200);
    // A dead row cannot be resent: the page says why, as a page.
    let id: i64 = app.count("SELECT min(id) FROM outbox").await;
    let refused = request(&app, "POST", &format!("/admin/outbox/{id}/resend"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "a page's own error stays a page"
    );
}
