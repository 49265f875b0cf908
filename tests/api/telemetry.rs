//! OpenTelemetry traces, as a collector sees them: the real binary exports over
//! OTLP/HTTP (protobuf) to a stand-in receiver; the test decodes what arrived.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::bridge::Bridge;
use crate::helpers::{API_KEY, LICENSE, TestDb, example_mappings, fixture, queued_webengage};

/// The CRM's trace: its id and the id of the CRM span that sent the webhook.
const CRM_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CRM_SPAN: &str = "00f067aa0ba902b7";
/// What an OTLP header carries in real life: an ingest key.
const COLLECTOR_KEY: &str = "otlp-ingest-key-5d0c8e1f";

async fn collector() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// Every span the collector received, and the resources' `service.name`s.
async fn exported(collector: &MockServer) -> (Vec<Span>, Vec<String>) {
    let (mut spans, mut services) = (Vec::new(), Vec::new());
    for request in collector.received_requests().await.unwrap_or_default() {
        assert_eq!(
            request.headers.get("authorization").map(|v| v.as_bytes()),
            Some(format!("Bearer {COLLECTOR_KEY}").as_bytes()),
            "the OTLP headers were not sent"
        );
        let export = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("an OTLP protobuf export");
        for resource_spans in export.resource_spans {
            for attribute in resource_spans.resource.iter().flat_map(|r| &r.attributes) {
                if let ("service.name", Some(AnyValue::StringValue(name))) = (
                    attribute.key.as_str(),
                    attribute.value.as_ref().and_then(|v| v.value.as_ref()),
                ) {
                    services.push(name.clone());
                }
            }
            spans.extend(resource_spans.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    (spans, services)
}

fn lead(prospect: &str, email: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture("lsq_lead_create.json")).unwrap();
    body["ProspectID"] = prospect.into();
    body["EmailAddress"] = email.into();
    serde_json::to_vec(&body).unwrap()
}

async fn delivered(db: &TestDb) -> (i64, i64) {
    sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Stops a bridge with SIGTERM and checks it exited cleanly without logging the
/// collector's key.
async fn stop(mut bridge: Bridge) {
    bridge.signal("TERM");
    let status = bridge.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", bridge.log());
    assert!(
        !bridge.log().contains(COLLECTOR_KEY),
        "the OTLP header value reached the log"
    );
}

#[tokio::test]
async fn a_webhook_and_its_webengage_calls_are_traced_and_linked() {
    let db = TestDb::new().await;
    let webengage = queued_webengage().await;
    let collector = collector().await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "BRIDGE_MAPPINGS_DIR",
            example_mappings().display().to_string(),
        ),
        ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
        ("WEBENGAGE_API_KEY", API_KEY.to_owned()),
        ("WEBENGAGE_BASE_URL", webengage.uri()),
        // At debug the HTTP layer makes a span of its own per request; the webhook's
        // trace must not depend on it.
        ("RUST_LOG", "debug".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{COLLECTOR_KEY}"),
        ),
        ("OTEL_SERVICE_NAME", "bridge-under-test".to_owned()),
        // Nothing leaves before the shutdown: what arrives was flushed on the way out.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ];
    // The webhooks first, without a worker, so that one bulk call carries both.
    let server = Bridge::start(&["serve", "--no-worker"], "BRIDGE_LISTEN", &env).await;
    let http = reqwest::Client::new();
    let send = |body: Vec<u8>, traceparent: &str| {
        http.post(format!("{}/webhooks/leadsquared", server.address))
            .header("content-type", "application/json")
            .header("traceparent", traceparent)
            .body(body)
            .send()
    };
    let continued = send(
        lead("c0ffee00-0000-4000-8000-000000000001", "traced@example.com"),
        &format!("00-{CRM_TRACE}-{CRM_SPAN}-01"),
    )
    .await
    .unwrap();
    assert_eq!(continued.status(), 200);
    // Upper-case hex is not a valid traceparent: ignored, the webhook starts a trace.
    let malformed = send(
        lead("c0ffee00-0000-4000-8000-000000000002", "fresh@example.com"),
        &format!("00-{}-{CRM_SPAN}-01", CRM_TRACE.to_uppercase()),
    )
    .await
    .unwrap();
    assert_eq!(malformed.status(), 200);
    stop(server).await;

    // The worker reads the collector's headers from a secret file instead.
    let secrets = tempfile::tempdir().unwrap();
    let headers_file = secrets.path().join("otlp-headers");
    std::fs::write(
        &headers_file,
        format!("authorization=Bearer%20{COLLECTOR_KEY}\n"),
    )
    .unwrap();
    let mut env = env;
    env.retain(|(name, _)| *name != "OTEL_EXPORTER_OTLP_HEADERS");
    env.push((
        "OTEL_EXPORTER_OTLP_HEADERS_FILE",
        headers_file.display().to_string(),
    ));
    let worker = Bridge::start(&["worker"], "BRIDGE_WORKER_LISTEN", &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (done, rows) = delivered(&db).await;
        if rows > 0 && done == rows {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {rows} rows delivered; log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(worker).await;
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT trace_context FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();

    let (spans, services) = exported(&collector).await;
    assert!(!services.is_empty() && services.iter().all(|s| s == "bridge-under-test"));
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let webhooks = named("webhook");
    assert_eq!(
        webhooks.len(),
        2,
        "one span per webhook: {:?}",
        names(&spans)
    );
    let crm_trace = hex::decode(CRM_TRACE).unwrap();
    let (traced, fresh): (Vec<&Span>, Vec<&Span>) =
        webhooks.into_iter().partition(|s| s.trace_id == crm_trace);
    let [traced] = traced[..] else {
        panic!("the CRM's trace was not continued")
    };
    let [fresh] = fresh[..] else {
        panic!("the malformed traceparent's webhook has no trace of its own")
    };
    assert_eq!(traced.parent_span_id, hex::decode(CRM_SPAN).unwrap());
    assert!(
        fresh.parent_span_id.is_empty(),
        "a malformed traceparent was used"
    );
    // Receipt to commit, inside the webhook's trace.
    for step in ["authenticate", "parse_map", "commit"] {
        assert!(
            named(step)
                .iter()
                .any(|s| s.trace_id == crm_trace && s.parent_span_id == traced.span_id),
            "no {step} span in the webhook's trace: {:?}",
            names(&spans)
        );
    }
    // The rows keep the webhook span's context...
    let traceparent = format!("00-{CRM_TRACE}-{}-01", hex::encode(&traced.span_id));
    assert!(
        stored
            .iter()
            .any(|t| t.as_deref() == Some(traceparent.as_str())),
        "{stored:?} lacks {traceparent}"
    );
    assert!(stored.iter().all(Option::is_some), "{stored:?}");
    // ...and each WebEngage call links to the webhooks of the rows it carried.
    let calls = named("webengage_call");
    assert!(
        !calls.is_empty(),
        "no WebEngage call span: {:?}",
        names(&spans)
    );
    let linked_to = |call: &Span, webhook: &Span| {
        call.links
            .iter()
            .any(|l| l.trace_id == webhook.trace_id && l.span_id == webhook.span_id)
    };
    for call in &calls {
        assert!(
            linked_to(call, traced) || linked_to(call, fresh),
            "a WebEngage call links to no webhook: {:?}",
            call.links
        );
        assert_ne!(call.trace_id, crm_trace, "a call is its own trace, linked");
    }
    // A bulk call carries the rows of both webhooks: one link to each.
    assert!(
        calls
            .iter()
            .any(|c| linked_to(c, traced) && linked_to(c, fresh)),
        "no call links to both webhooks: {:?}",
        calls.iter().map(|c| &c.links).collect::<Vec<_>>()
    );
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_stored_for_traces() {
    let db = TestDb::new().await;
    let webengage = queued_webengage().await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "BRIDGE_MAPPINGS_DIR",
            example_mappings().display().to_string(),
        ),
        ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
        ("WEBENGAGE_API_KEY", API_KEY.to_owned()),
        ("WEBENGAGE_BASE_URL", webengage.uri()),
    ];
    let bridge = Bridge::serve(&env).await;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/leadsquared", bridge.address))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{CRM_TRACE}-{CRM_SPAN}-01"))
        .body(fixture("lsq_lead_create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored: Vec<Option<String>> = sqlx::query_scalar("SELECT trace_context FROM outbox")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(
        !stored.is_empty() && stored.iter().all(Option::is_none),
        "{stored:?}"
    );
}
