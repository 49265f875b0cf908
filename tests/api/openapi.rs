//! `GET /admin/api/openapi.json`: a valid OpenAPI 3 document listing every admin API
//! route with exactly the methods the bridge answers, and the routes the docs describe.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, VIEWER_TOKEN, spawn_app};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn app() -> TestApp {
    spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await
}

async fn document(app: &TestApp) -> Value {
    let answer = app
        .http
        .get(format!("{}/admin/api/openapi.json", app.address))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    answer.json().await.unwrap()
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// The routes `docs/admin-api.md` describes in its route table (`| \`GET /admin/api/...`).
fn documented_in_prose() -> BTreeSet<(String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin-api.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| {
            let route = cell.split('`').next()?;
            let (method, path) = route.split_once(' ')?;
            let path = path.split(['?', '[']).next()?;
            path.starts_with("/admin/api/")
                .then(|| (method.to_owned(), path.to_owned()))
        })
        .collect()
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_with_bearer_auth_and_resolving_refs() {
    let app = app().await;
    let doc = document(&app).await;
    let text = serde_json::to_string(&doc).unwrap();
    let parsed = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    assert!(parsed.openapi.starts_with("3."), "{}", parsed.openapi);
    assert!(!parsed.info.title.is_empty());
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(
        !found.is_empty(),
        "request and error schemas are referenced"
    );
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "$ref {r} resolves to nothing"
        );
    }
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} documents no answer"
        );
        assert!(
            op["responses"].get("401").is_some(),
            "{method} {path} does not say it needs a token"
        );
        for name in path.split('/').filter(|s| s.starts_with('{')) {
            let name = name.trim_matches(['{', '}']);
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path"),
                "{method} {path} does not describe its parameter {name}"
            );
        }
    }
}

#[tokio::test]
async fn every_admin_route_is_in_the_document_with_its_methods() {
    let app = app().await;
    let doc = document(&app).await;
    let listed = operations(&doc);
    // The contract's routes (interface.md) and the ones this bridge added.
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/admin/api/openapi.json"),
        ("GET", "/admin/api/stats"),
        ("GET", "/admin/api/outbox"),
        ("GET", "/admin/api/outbox/{id}"),
        ("POST", "/admin/api/outbox/{id}/retry"),
        ("POST", "/admin/api/outbox/{id}/cancel"),
        ("POST", "/admin/api/outbox/{id}/resend"),
        ("POST", "/admin/api/outbox/replay"),
        ("GET", "/admin/api/inbound"),
        ("GET", "/admin/api/inbound/{id}"),
        ("POST", "/admin/api/inbound/{id}/remap"),
        ("POST", "/admin/api/inbound/remap"),
        ("GET", "/admin/api/jobs/{id}"),
        ("POST", "/admin/api/erase"),
        ("GET", "/admin/api/audit"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    let prose = documented_in_prose();
    let undocumented: Vec<_> = listed.difference(&prose).collect();
    let unlisted: Vec<_> = prose.difference(&listed).collect();
    assert!(
        undocumented.is_empty() && unlisted.is_empty(),
        "docs/admin-api.md and the OpenAPI document disagree: only in the document \
         {undocumented:?}, only in the docs {unlisted:?}"
    );
}

/// Each documented operation is answered by a route (never the unknown-route 404 or a
/// 405), and each documented path refuses the methods the document does not list, with
/// an `Allow` naming exactly the listed ones: the registered routes are the document's.
#[tokio::test]
async fn the_bridge_answers_exactly_the_documented_operations() {
    let app = app().await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", app.address, path.replace("{id}", "987654"));
        let listed: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .collect();
        for method in METHODS {
            let answer = app
                .http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body("{\"dry_run\": true}")
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let allow = answer
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if listed.contains(&method) {
                assert_ne!(status, 405, "{method} {path}: {body}");
                let message = body["error"]["message"].as_str().unwrap_or("");
                assert!(
                    !message.starts_with("no admin API route"),
                    "{method} {path} is documented but not routed: {body}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
                assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
                let allow: BTreeSet<String> = allow
                    .expect("Allow")
                    .split(", ")
                    .map(str::to_lowercase)
                    .collect();
                let listed: BTreeSet<String> = listed.iter().map(|m| m.to_string()).collect();
                assert_eq!(allow, listed, "{path}");
            }
        }
    }
}

#[tokio::test]
async fn the_document_takes_the_admin_api_tokens() {
    let app = app().await;
    let url = format!("{}/admin/api/openapi.json", app.address);
    let anonymous = app.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let admin = app.http.get(&url).bearer_auth(ADMIN_TOKEN).send().await;
    assert_eq!(admin.unwrap().status(), 200);
    let off = spawn_app(AppOptions {
        with_worker: false,
        admin_token: None,
        ..AppOptions::default()
    })
    .await;
    let answer = off
        .http
        .get(format!("{}/admin/api/openapi.json", off.address))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "the admin surface is off");
}
