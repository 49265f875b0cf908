//! CRMs retry, redeliver and reorder, and the endpoint is on the internet: every
//! hostile or odd request gets the contract's answer and the service stays healthy.

use std::time::{Duration, Instant};

use crate::helpers::{AppOptions, TestApp, fixture, spawn_app};
use serde_json::Value;

async fn app() -> TestApp {
    spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await
}

/// A Salesforce message carrying `n` Lead notifications, each a different lead.
fn salesforce_message(notifications: &[(String, String, String)]) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>00D5j00000KqRtBEAV</OrganizationId><ActionId>04k5j000000TxQmAAK</ActionId>
<SessionId xsi:nil="true"/><EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/60.0</EnterpriseUrl>
<PartnerUrl>https://x.my.salesforce.com/services/Soap/u/60.0</PartnerUrl>"#,
    );
    for (notification_id, lead_id, modified) in notifications {
        xml.push_str(&format!(
            r#"<Notification><Id>{notification_id}</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
<sf:Id>{lead_id}</sf:Id><sf:Email>{lead_id}@example.com</sf:Email><sf:FirstName>Zoë</sf:FirstName>
<sf:LastModifiedDate>{modified}</sf:LastModifiedDate><sf:Status>Open</sf:Status></sObject></Notification>"#
        ));
    }
    xml.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    xml.into_bytes()
}

fn notification(n: usize, lead: &str, modified: &str) -> (String, String, String) {
    (
        format!("04l5j00000B{n:07}"),
        lead.to_owned(),
        modified.to_owned(),
    )
}

#[tokio::test]
async fn hundred_notifications_get_one_ack_and_two_hundred_operations() {
    let app = app().await;
    let batch: Vec<_> = (0..100)
        .map(|i| notification(i, &format!("00Q5j00000L{i:07}"), "2024-01-15T10:30:00.000Z"))
        .collect();
    let response = app
        .post("salesforce", "text/xml", salesforce_message(&batch))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert_eq!(body.matches("<Ack>true</Ack>").count(), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'mapped'")
            .await,
        100
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 200);
    // Non-ASCII text arrives intact.
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE body->>'firstName' = 'Zoë'")
            .await,
        100
    );

    let replay = app
        .post("salesforce", "text/xml", salesforce_message(&batch))
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        200,
        "a replayed message adds nothing"
    );
}

#[tokio::test]
async fn an_older_version_of_a_record_is_stale_and_sends_nothing() {
    let app = app().await;
    let lead = "00Q5j00000Hk4TbEAJ";
    let newer = salesforce_message(&[notification(1, lead, "2024-01-15T12:00:00.000Z")]);
    let older = salesforce_message(&[notification(2, lead, "2024-01-15T09:00:00.000Z")]);
    let same = salesforce_message(&[notification(3, lead, "2024-01-15T12:00:00.000Z")]);
    assert_eq!(
        app.post("salesforce", "text/xml", newer).await.status(),
        200
    );
    let rows = app.count("SELECT count(*) FROM outbox").await;
    let response = app.post("salesforce", "text/xml", older).await;
    assert_eq!(
        response.status(),
        200,
        "a stale record is still acknowledged, or Salesforce retries it for a day"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_records WHERE status = 'stale'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        rows,
        "stale produces nothing"
    );
    // An equal version passes the fence (only exact repeats are duplicates).
    assert_eq!(app.post("salesforce", "text/xml", same).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, rows * 2);
}

#[tokio::test]
async fn concurrent_versions_of_one_record_leave_the_newest_fence() {
    let app = app().await;
    let lead = "00Q5j00000Hk9ZZEAJ";
    let mut requests = Vec::new();
    for hour in 0..10 {
        let body = salesforce_message(&[notification(
            100 + hour,
            lead,
            &format!("2024-01-15T{hour:02}:00:00.000Z"),
        )]);
        requests.push(app.post("salesforce", "text/xml", body));
    }
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    let fence: String =
        sqlx::query_scalar("SELECT version_at FROM record_versions WHERE record_key = $1")
            .bind(lead)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(fence.starts_with("2024-01-15T09:00:00"), "fence at {fence}");
    let stored = app.count("SELECT count(*) FROM inbound_records").await;
    assert_eq!(stored, 10, "every version is stored, mapped or stale");
    // The newest version was accepted: its event went to the outbox.
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE kind = 'event' AND body->>'eventTime' = '2024-01-15T09:00:00+0000'")
            .await,
        1
    );
}

#[tokio::test]
async fn body_limit_is_exact_and_enforced_while_reading() {
    let limit = 4096;
    let app = spawn_app(AppOptions {
        with_worker: false,
        max_body: limit,
        ..AppOptions::default()
    })
    .await;
    let json_of_len = |len: usize| {
        let mut body =
            br#"{"ProspectID":"p1","ModifiedOn":"2024-01-15 10:30:00","Notes":""#.to_vec();
        body.resize(len - 2, b'x');
        body.extend_from_slice(b"\"}");
        body
    };
    assert_eq!(
        app.post("leadsquared", "application/json", json_of_len(limit))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post("leadsquared", "application/json", json_of_len(limit + 1))
            .await
            .status(),
        413
    );

    // Without a Content-Length the count while reading refuses it too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 3000]), Ok(vec![b' '; 3000])];
    let streamed = app
        .http
        .post(format!("{}/webhooks/leadsquared", app.address))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(response) = streamed {
        assert_eq!(response.status(), 413);
    }
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 1);
}

#[tokio::test]
async fn six_mebibytes_is_refused_with_413_by_default() {
    let app = app().await;
    let response = app
        .post(
            "leadsquared",
            "application/json",
            vec![b'x'; 6 * 1024 * 1024],
        )
        .await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn entity_bombs_and_external_entities_are_refused_fast() {
    let app = app().await;
    let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol9;</soapenv:Body></soapenv:Envelope>"#;
    let started = Instant::now();
    let response = app.post("salesforce", "text/xml", bomb.to_vec()).await;
    assert_eq!(response.status(), 400);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body></soapenv:Envelope>"#;
    let response = app.post("salesforce", "text/xml", xxe.to_vec()).await;
    assert_eq!(response.status(), 400);
    assert!(!response.text().await.unwrap().contains("root:"));
    assert_eq!(app.count("SELECT count(*) FROM inbound_records").await, 0);
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    let app = app().await;
    let depth = 100_000;
    let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let response = app
        .post("salesforce-flow", "application/json", body.into_bytes())
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "malformed_body");
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn leadsquared_accepts_its_three_content_types() {
    let app = app().await;
    let lead: Value = serde_json::from_slice(&fixture("lsq_lead_create.json")).unwrap();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            lead.as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))),
        )
        .finish();
    let form_answer: Value = app
        .post(
            "leadsquared",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(form_answer["Status"], "Success");
    assert_eq!(form_answer["accepted"], 1);
    let stored: Value =
        sqlx::query_scalar("SELECT payload FROM inbound_records WHERE source = 'leadsquared'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored["EmailAddress"], "rohan.deshpande@example.com");
    assert_eq!(stored["DoNotCall"], "0");

    // The same lead as text/plain JSON is the same record: a duplicate.
    let text_answer: Value = app
        .post(
            "leadsquared",
            "text/plain; charset=utf-8",
            fixture("lsq_lead_create.json"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(text_answer["Status"], "Success");
    assert_eq!(text_answer["duplicates"], 1);
    let activity: Value = app
        .post("leadsquared", "text/plain", fixture("lsq_activity.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(activity["accepted"], 1);
}
