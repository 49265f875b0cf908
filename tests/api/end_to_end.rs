//! Every fixture in, the exact WebEngage bodies out: the whole way through the outbox.

use crate::helpers::{AppOptions, LICENSE, TestApp, fixture, spawn_app};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

fn users_path() -> String {
    format!("/v1/accounts/{LICENSE}/users")
}

fn events_path() -> String {
    format!("/v1/accounts/{LICENSE}/events")
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
}

async fn accept_everything(app: &TestApp) {
    Mock::given(method("POST"))
        .and(header(
            "authorization",
            format!("Bearer {}", crate::helpers::API_KEY).as_str(),
        ))
        .respond_with(queued())
        .mount(&app.webengage)
        .await;
}

async fn deliver(source: &str, content_type: &str, file: &str, rows: i64) -> TestApp {
    let app = spawn_app(AppOptions::default()).await;
    accept_everything(&app).await;
    let response = app.post(source, content_type, fixture(file)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    app.wait_for_count(
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
        rows,
    )
    .await;
    app
}

fn bodies(received: Vec<(Value, String)>) -> Vec<Value> {
    received.into_iter().map(|(b, _)| b).collect()
}

#[tokio::test]
async fn salesforce_lead_reaches_webengage_exactly() {
    let app = deliver(
        "salesforce",
        "text/xml; charset=utf-8",
        "sf_outbound_lead_single.xml",
        2,
    )
    .await;
    assert_eq!(
        bodies(app.received(&users_path()).await),
        vec![
            json!({"userId":"meera.iyer@example.com","firstName":"Meera","lastName":"Iyer","email":"meera.iyer@example.com","phone":"+919876543210","company":"Rao & Iyer Consulting","city":"Pune","country":"India","emailOptIn":true,"attributes":{"sf_lead_id":"00Q5j00000Hk4TbEAJ","lead_source":"Web","lead_status":"Open - Not Contacted","webengage_opt_in":true,"product_interest":"Data Science Bootcamp"}})
        ]
    );
    assert_eq!(
        bodies(app.received(&events_path()).await),
        vec![
            json!({"userId":"meera.iyer@example.com","eventName":"Lead Synced","eventTime":"2024-01-15T10:30:04+0000","eventData":{"sf_lead_id":"00Q5j00000Hk4TbEAJ","status":"Open - Not Contacted","lead_source":"Web"}})
        ]
    );
}

#[tokio::test]
async fn salesforce_contact_reaches_webengage_exactly() {
    let app = deliver("salesforce", "text/xml", "sf_outbound_contact.xml", 1).await;
    assert_eq!(
        bodies(app.received(&users_path()).await),
        vec![
            json!({"userId":"arjun.mehta@example.com","firstName":"Arjun","lastName":"Mehta","email":"arjun.mehta@example.com","phone":"+919123456780","birthDate":"1991-04-12T00:00:00+0000","city":"Bengaluru","country":"India","postalCode":"560034","emailOptIn":true,"attributes":{"sf_contact_id":"0035j00000Lm2VxAAJ","sf_account_id":"0015j00000Np8QrAAJ","job_title":"Head of Growth","lead_source":"Web"}})
        ]
    );
}

#[tokio::test]
async fn flow_json_lead_reaches_webengage_exactly() {
    let app = deliver(
        "salesforce-flow",
        "application/json",
        "sf_flow_lead.json",
        2,
    )
    .await;
    assert_eq!(
        bodies(app.received(&users_path()).await),
        vec![
            json!({"userId":"kavya.srinivasan@example.com","firstName":"Kavya","lastName":"Srinivasan","email":"kavya.srinivasan@example.com","phone":"+918045671234","company":"Nimbus Edtech Pvt Ltd","city":"Bengaluru","country":"India","emailOptIn":true,"attributes":{"sf_lead_id":"00Q5j00000Hk5WdEAJ","job_title":"Marketing Manager","lead_source":"Web","lead_status":"Open - Not Contacted","annual_revenue":2500000,"employees":45,"webengage_opt_in":true,"preferred_contact_date":"2024-01-18T00:00:00+0000","product_interest":"Data Science Bootcamp"}})
        ]
    );
    assert_eq!(
        bodies(app.received(&events_path()).await),
        vec![
            json!({"userId":"kavya.srinivasan@example.com","eventName":"Lead Synced","eventTime":"2024-01-15T10:30:00+0000","eventData":{"sf_lead_id":"00Q5j00000Hk5WdEAJ","status":"Open - Not Contacted","lead_source":"Web"}})
        ]
    );
}

#[tokio::test]
async fn leadsquared_lead_and_activity_reach_webengage_exactly() {
    let app = deliver("leadsquared", "application/json", "lsq_lead_create.json", 2).await;
    let response = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_activity.json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 3)
        .await;
    assert_eq!(
        bodies(app.received(&users_path()).await),
        vec![
            json!({"userId":"rohan.deshpande@example.com","firstName":"Rohan","lastName":"Deshpande","email":"rohan.deshpande@example.com","phone":"+919123456780","birthDate":"2007-08-21T00:00:00+0000","city":"Pune","region":"Maharashtra","country":"India","postalCode":"411038","emailOptIn":true,"smsOptIn":true,"attributes":{"lsq_prospect_id":"5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0","lead_stage":"Prospect","lead_source":"Google Ads","lead_score":10,"owner":"Sneha Kulkarni","whatsapp_number":"+919876543210","course_interest":"JEE Main Crash Course","preferred_batch":"Weekend","lead_status":"New","utm_term":"jee crash course pune"}})
        ]
    );
    assert_eq!(
        bodies(app.received(&events_path()).await),
        vec![
            json!({"userId":"rohan.deshpande@example.com","eventName":"Lead Synced","eventTime":"2024-01-15T10:30:00+0000","eventData":{"stage":"Prospect","source":"Google Ads","medium":"cpc","campaign":"JEE-Crash-Course-Jan24"}}),
            json!({"userId":"rohan.deshpande@example.com","eventName":"Demo Class Attended","eventTime":"2024-01-16T09:12:45+0000","eventData":{"activity_id":"e3b7c2a9-41f6-4d8e-b0a5-6c9d2f1e8a37","activity_code":201,"note":"Attended free demo class: Physics – Rotational Motion","score":15,"created_by":"Imran Shaikh","custom_1":"Physics","custom_2":"2024-01-16 08:00:00","custom_3":"75","custom_4":"Online"}}),
        ]
    );
}

#[tokio::test]
async fn redelivery_sends_nothing_new() {
    let app = deliver("salesforce", "text/xml", "sf_outbound_lead_single.xml", 2).await;
    let again = app
        .post(
            "salesforce",
            "text/xml",
            fixture("sf_outbound_lead_single.xml"),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 2);
    assert_eq!(app.webengage.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn server_error_then_success_delivers_with_the_same_request_id() {
    let app = spawn_app(AppOptions::default()).await;
    Mock::given(method("POST"))
        .and(path(users_path()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.webengage)
        .await;
    accept_everything(&app).await;
    let response = app
        .post(
            "salesforce-flow",
            "application/json",
            fixture("sf_flow_lead.json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 2)
        .await;
    let users = app.received(&users_path()).await;
    assert_eq!(users.len(), 2, "one failure, one success");
    assert!(!users[0].1.is_empty());
    assert_eq!(
        users[0].1, users[1].1,
        "x-request-id must stay the same across retries"
    );
    assert_eq!(users[0].0, users[1].0);
    let stored: String = sqlx::query_scalar(
        "SELECT replace(request_id::text, '-', '') FROM outbox WHERE kind = 'user'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(users[0].1, stored);
    assert_eq!(
        app.count("SELECT count(*) FROM delivery_attempts WHERE http_status = 500")
            .await,
        1
    );
}

#[tokio::test]
async fn bad_request_leaves_a_dead_row_with_webengage_message() {
    let app = spawn_app(AppOptions::default()).await;
    Mock::given(method("POST"))
        .and(path(users_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"response": {"status": "error", "message": "Invalid phone number"}}),
        ))
        .mount(&app.webengage)
        .await;
    accept_everything(&app).await;
    app.post(
        "salesforce-flow",
        "application/json",
        fixture("sf_flow_lead.json"),
    )
    .await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'dead'", 1)
        .await;
    let error: String = sqlx::query_scalar("SELECT last_error FROM outbox WHERE status = 'dead'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(error.contains("Invalid phone number"), "{error}");
}

#[tokio::test]
async fn unauthorized_pauses_with_nothing_dead_and_resumes() {
    let app = spawn_app(AppOptions::default()).await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"response": {"status": "error", "message": "Unauthorized"}})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&app.webengage)
        .await;
    accept_everything(&app).await;
    app.post(
        "salesforce-flow",
        "application/json",
        fixture("sf_flow_lead.json"),
    )
    .await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'delivered'", 2)
        .await;
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE status = 'dead'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM destination_state WHERE paused_reason IS NOT NULL")
            .await,
        0,
        "resumed"
    );
    assert!(
        app.count("SELECT count(*) FROM delivery_attempts WHERE http_status = 401")
            .await
            >= 1
    );
}
