//! Behaviour of the example mappings in `mappings/` on the shared fixtures, and load errors.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::webengage::OperationKind;

fn examples() -> MappingSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    MappingSet::load_dir(&dir).unwrap_or_else(|e| panic!("examples load:\n{e}"))
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn fixture_json(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

fn bodies(m: &MappedRecord) -> Vec<(OperationKind, Value)> {
    m.operations
        .iter()
        .map(|o| (o.kind, o.body.clone()))
        .collect()
}

/// `sf_outbound_lead_single.xml` as the salesforce-outbound parser presents it.
pub fn sf_lead_record() -> Value {
    json!({
        "Id": "04l5j00000Bq8LdAAJ",
        "sObject": {
            "type": "Lead", "Id": "00Q5j00000Hk4TbEAJ", "City": "Pune", "Company": "Rao & Iyer Consulting",
            "Country": "India", "CreatedDate": "2024-01-15T10:30:00.000Z", "Email": "meera.iyer@example.com",
            "FirstName": "Meera", "HasOptedOutOfEmail": "false", "LastModifiedDate": "2024-01-15T10:30:04.000Z",
            "LastName": "Iyer", "LeadSource": "Web", "MobilePhone": "+91 98765 43210", "OwnerId": "0055j00000Fg1HkAAJ",
            "Phone": "(020) 4567 8901", "Product_Interest__c": "Data Science Bootcamp",
            "Status": "Open - Not Contacted", "WebEngage_Opt_In__c": "true"
        },
        "OrganizationId": "00D5j00000KqRtBEAV", "ActionId": "04k5j000000TxQmAAK", "SessionId": null,
        "EnterpriseUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/c/60.0/00D5j00000KqRtB",
        "PartnerUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/u/60.0/00D5j00000KqRtB"
    })
}

/// `sf_outbound_contact.xml` as the salesforce-outbound parser presents it.
pub fn sf_contact_record() -> Value {
    json!({
        "Id": "04l5j00000Bq9MnAAJ",
        "sObject": {
            "type": "Contact", "Id": "0035j00000Lm2VxAAJ", "AccountId": "0015j00000Np8QrAAJ",
            "Birthdate": "1991-04-12", "CreatedDate": "2024-01-15T11:02:19.000Z", "Email": "arjun.mehta@example.com",
            "FirstName": "Arjun", "HasOptedOutOfEmail": "false", "LastModifiedDate": "2024-01-15T11:02:19.000Z",
            "LastName": "Mehta", "LeadSource": "Web", "MailingCity": "Bengaluru", "MailingCountry": "India",
            "MailingPostalCode": "560034", "MobilePhone": "+91 91234 56780", "OwnerId": "0055j00000Fg1HkAAJ",
            "Phone": "080 4123 9876", "Title": "Head of Growth"
        },
        "OrganizationId": "00D5j00000KqRtBEAV", "ActionId": "04k5j000000TxRqAAK", "SessionId": null,
        "EnterpriseUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/c/60.0/00D5j00000KqRtB",
        "PartnerUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/u/60.0/00D5j00000KqRtB"
    })
}

fn run(source: &str, record: &Value) -> MappedRecord {
    examples()
        .get(source)
        .expect("source")
        .map_record(record, now())
}

#[test]
fn salesforce_lead_gives_user_and_event() {
    let m = run("salesforce", &sf_lead_record());
    assert_eq!(
        (m.status, &m.warnings, &m.error()),
        (RecordStatus::Mapped, &vec![], &None)
    );
    assert_eq!(
        bodies(&m),
        vec![
            (
                OperationKind::User,
                json!({
                    "userId": "meera.iyer@example.com", "firstName": "Meera", "lastName": "Iyer",
                    "email": "meera.iyer@example.com", "phone": "+919876543210", "company": "Rao & Iyer Consulting",
                    "city": "Pune", "country": "India", "emailOptIn": true,
                    "attributes": {"sf_lead_id": "00Q5j00000Hk4TbEAJ", "lead_source": "Web",
                        "lead_status": "Open - Not Contacted", "webengage_opt_in": true,
                        "product_interest": "Data Science Bootcamp"}
                })
            ),
            (
                OperationKind::Event,
                json!({
                    "userId": "meera.iyer@example.com", "eventName": "Lead Synced", "eventTime": "2024-01-15T10:30:04+0000",
                    "eventData": {"sf_lead_id": "00Q5j00000Hk4TbEAJ", "status": "Open - Not Contacted", "lead_source": "Web"}
                })
            ),
        ]
    );
    assert!(m.operations.iter().all(|o| o.rule == "lead-profile"));
}

#[test]
fn salesforce_contact_gives_user() {
    let m = run("salesforce", &sf_contact_record());
    assert_eq!(m.status, RecordStatus::Mapped);
    assert_eq!(
        bodies(&m),
        vec![(
            OperationKind::User,
            json!({
                "userId": "arjun.mehta@example.com", "firstName": "Arjun", "lastName": "Mehta",
                "email": "arjun.mehta@example.com", "phone": "+919123456780", "birthDate": "1991-04-12T00:00:00+0000",
                "city": "Bengaluru", "country": "India", "postalCode": "560034", "emailOptIn": true,
                "attributes": {"sf_contact_id": "0035j00000Lm2VxAAJ", "sf_account_id": "0015j00000Np8QrAAJ",
                    "job_title": "Head of Growth", "lead_source": "Web"}
            })
        )]
    );
}

#[test]
fn salesforce_version_and_unmatched_objects() {
    let set = examples();
    let sf = set.get("salesforce").expect("salesforce");
    assert_eq!(
        sf.version_of(&sf_lead_record()),
        Some(RecordVersion {
            key: "00Q5j00000Hk4TbEAJ".into(),
            at: "2024-01-15T10:30:04.000000000Z".into()
        })
    );
    let mut other = sf_lead_record();
    other["sObject"]["type"] = json!("Opportunity");
    let m = sf.map_record(&other, now());
    assert_eq!((m.status, m.operations.len()), (RecordStatus::Ignored, 0));
    assert_eq!(sf.auth.organization_ids, ["00D5j00000KqRtB"]);
    assert_eq!(sf.content_hash.len(), 64);
}

#[test]
fn salesforce_flow_lead() {
    let m = run("salesforce-flow", &fixture_json("sf_flow_lead.json"));
    assert_eq!((m.status, &m.warnings), (RecordStatus::Mapped, &vec![]));
    assert_eq!(
        bodies(&m),
        vec![
            (
                OperationKind::User,
                json!({
                    "userId": "kavya.srinivasan@example.com", "firstName": "Kavya", "lastName": "Srinivasan",
                    "email": "kavya.srinivasan@example.com", "phone": "+918045671234", "company": "Nimbus Edtech Pvt Ltd",
                    "city": "Bengaluru", "country": "India", "emailOptIn": true,
                    "attributes": {"sf_lead_id": "00Q5j00000Hk5WdEAJ", "job_title": "Marketing Manager", "lead_source": "Web",
                        "lead_status": "Open - Not Contacted", "annual_revenue": 2500000, "employees": 45,
                        "webengage_opt_in": true, "preferred_contact_date": "2024-01-18T00:00:00+0000",
                        "product_interest": "Data Science Bootcamp"}
                })
            ),
            (
                OperationKind::Event,
                json!({
                    "userId": "kavya.srinivasan@example.com", "eventName": "Lead Synced", "eventTime": "2024-01-15T10:30:00+0000",
                    "eventData": {"sf_lead_id": "00Q5j00000Hk5WdEAJ", "status": "Open - Not Contacted", "lead_source": "Web"}
                })
            ),
        ]
    );
    let flow = examples();
    let flow = flow.get("salesforce-flow").expect("flow");
    assert_eq!(
        flow.dedupe_key(&fixture_json("sf_flow_lead.json")),
        "00Q5j00000Hk5WdEAJ:2024-01-15T10:30:00.000+0000"
    );
}

#[test]
fn leadsquared_lead_create() {
    let m = run("leadsquared", &fixture_json("lsq_lead_create.json"));
    assert_eq!((m.status, &m.warnings), (RecordStatus::Mapped, &vec![]));
    assert_eq!(
        bodies(&m),
        vec![
            (
                OperationKind::User,
                json!({
                    "userId": "rohan.deshpande@example.com", "firstName": "Rohan", "lastName": "Deshpande",
                    "email": "rohan.deshpande@example.com", "phone": "+919123456780", "birthDate": "2007-08-21T00:00:00+0000",
                    "city": "Pune", "region": "Maharashtra", "country": "India", "postalCode": "411038",
                    "emailOptIn": true, "smsOptIn": true,
                    "attributes": {"lsq_prospect_id": "5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0", "lead_stage": "Prospect",
                        "lead_source": "Google Ads", "lead_score": 10, "owner": "Sneha Kulkarni",
                        "whatsapp_number": "+919876543210", "course_interest": "JEE Main Crash Course",
                        "preferred_batch": "Weekend", "lead_status": "New", "utm_term": "jee crash course pune"}
                })
            ),
            (
                OperationKind::Event,
                json!({
                    "userId": "rohan.deshpande@example.com", "eventName": "Lead Synced", "eventTime": "2024-01-15T10:30:00+0000",
                    "eventData": {"stage": "Prospect", "source": "Google Ads", "medium": "cpc", "campaign": "JEE-Crash-Course-Jan24"}
                })
            ),
        ]
    );
}

#[test]
fn leadsquared_activity_stops_before_lead_rules() {
    let m = run("leadsquared", &fixture_json("lsq_activity.json"));
    assert_eq!(m.status, RecordStatus::Mapped);
    assert_eq!(
        bodies(&m),
        vec![(
            OperationKind::Event,
            json!({
                "userId": "rohan.deshpande@example.com", "eventName": "Demo Class Attended",
                "eventTime": "2024-01-16T09:12:45+0000",
                "eventData": {"activity_id": "e3b7c2a9-41f6-4d8e-b0a5-6c9d2f1e8a37", "activity_code": 201,
                    "note": "Attended free demo class: Physics – Rotational Motion", "score": 15,
                    "created_by": "Imran Shaikh", "custom_1": "Physics", "custom_2": "2024-01-16 08:00:00",
                    "custom_3": "75", "custom_4": "Online"}
            })
        )]
    );
}

#[test]
fn leadsquared_stage_change_and_bad_phone() {
    let mut lead = fixture_json("lsq_lead_create.json");
    lead["ProspectStage"] = json!("Opportunity");
    lead["Mobile"] = json!("not a phone");
    lead["Phone"] = json!(null);
    let m = run("leadsquared", &lead);
    assert_eq!(m.status, RecordStatus::Mapped);
    assert_eq!(
        m.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "rule `lead-profile`: user.phone dropped: \"not a phone\" is not a phone number (transform phone)"
        ]
    );
    assert!(m.operations[0].body.get("phone").is_none());
    assert_eq!(
        m.operations[2].body,
        json!({"userId": "rohan.deshpande@example.com", "eventName": "Lead Stage Changed",
            "eventTime": "2024-01-15T10:30:00+0000", "eventData": {"stage": "Opportunity", "owner": "Sneha Kulkarni"}})
    );
}

#[test]
fn a_failed_rule_does_not_block_others() {
    let mut lead = fixture_json("lsq_lead_create.json");
    lead["EmailAddress"] = json!("");
    lead["ProspectStage"] = json!("Customer");
    let m = run("leadsquared", &lead);
    assert_eq!(m.status, RecordStatus::Failed);
    assert_eq!(
        m.error().as_deref(),
        Some(
            "rule `lead-profile` failed: user.userId is required but the record has no value for it; rule `stage-change` failed: event.userId is required but the record has no value for it"
        )
    );
    lead["EmailAddress"] = json!("rohan@example.com");
    lead["FirstName"] = json!("");
    let m = run("leadsquared", &lead);
    assert_eq!(m.status, RecordStatus::Mapped);
    assert!(
        m.operations[0].body.get("firstName").is_none(),
        "empty strings are left out"
    );
}

fn load_errors(stem: &str, text: &str) -> Vec<String> {
    match SourceMapping::from_yaml_str(Path::new(&format!("{stem}.yaml")), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_error_is_reported_with_position_and_advice() {
    let text = "\
source:
  format: jsn
  auth: none
rules:
  - name: a
    user:
      userId: $.Email
      emailOptIn: yes-please
      gender: M
      attributes:
        we_score: $.Score
    event:
      eventNmae: Lead Synced
  - name: a
    when: { path: $.type, equals: [1] }
    event: { eventName: X, eventTime: { path: $.t, transform: [datetme] } }
";
    assert_eq!(
        load_errors("crm", text),
        [
            "crm.yaml:2:11: unknown format `jsn`; write one of: salesforce-outbound, leadsquared, json",
            "crm.yaml:8:7: `emailOptIn`: \"yes-please\" is not true/false; add `transform: [boolean]`",
            "crm.yaml:9:7: `gender`: `M` is not one of male, female, other; use `map:` to translate",
            "crm.yaml:11:9: user.attributes: `we_score` starts with `we_`, which WebEngage reserves; choose another name",
            "crm.yaml:13:7: unknown key `eventNmae` in event; did you mean `eventName`?",
            "crm.yaml:13:7: an event needs `eventName`",
            "crm.yaml:14:5: rule name `a` is already used at line 5; rule names must be unique in a file",
            "crm.yaml:15:35: `equals` compares with one value; for several values write `in: [a, b]`",
            "crm.yaml:16:64: unknown transform `datetme`; did you mean `datetime`?",
        ]
    );
}

#[test]
fn auth_is_required_and_env_vars_must_be_set() {
    let e = load_errors("x", "source: { format: json }\nrules: []\n");
    assert_eq!(
        e,
        [
            "x.yaml:1:9: `source` (write `auth: none` to accept unauthenticated requests) needs `auth`"
        ]
    );
    let e = load_errors(
        "x",
        "source:\n  format: json\n  auth: { bearer_env: WEBENGAGE_BRIDGE_TEST_UNSET_VAR }\nrules: []\n",
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("x.yaml:3:23: environment variable `WEBENGAGE_BRIDGE_TEST_UNSET_VAR`"),
        "{e:?}"
    );
    let e = load_errors(
        "x",
        "source:\n  format: json\n  auth: { organization_ids: [00D5j00000KqRtB] }\nrules: []\n",
    );
    assert_eq!(
        e,
        ["x.yaml:3:29: `organization_ids` only applies to `format: salesforce-outbound`"]
    );
    let e = load_errors(
        "Bad Name",
        "source: { format: json, auth: none }\nrules: []\n",
    );
    assert!(e[0].contains("cannot be a source id"), "{e:?}");
    let e = load_errors("x", "source: { format: json, auth: none\n");
    assert!(
        e[0].starts_with("x.yaml:") && e[0].contains("YAML syntax error"),
        "{e:?}"
    );
}

#[test]
fn values_templates_maps_and_defaults() {
    let text = r#"
source: { format: json, auth: none, dedupe_key: "{{ $.id }}-{{ $.v }}" }
rules:
  - name: all-forms
    when: { path: $.kind, equals: person }
    user:
      userId: "{{ $.first }}.{{ $.last }}"
      anonymousId: "{{ $.nothing }}"
      company: Acme
      attributes:
        score: 7
        rating: { path: $.rating, map: { Hot: 3, Warm: 2 }, default: 0 }
        missing_rating: { path: $.nope, map: { Hot: 3 }, default: 0 }
        tags: { path: $.tags, transform: [{ split: "," }, lowercase] }
        nested: { object: { a: $.first, b: $.nope } }
        list: { array: [$.first, $.nope, x] }
        first_of: { path: [$.nope, $.last] }
        constant: { const: "$.not_a_path" }
        hashed: { path: $.first, transform: [lowercase, sha256] }
        "*": { from: $.extra, rename: camelCase, prefix: x_ }
    events:
      - { eventName: One }
      - { eventName: "{{ $.kind }} seen", eventTime: "2024-01-15 10:30:00" }
"#;
    let m = SourceMapping::from_yaml_str(Path::new("t.yaml"), text).expect("loads");
    let record = json!({"id": 1, "kind": "person", "first": "Asha", "last": "Rao", "rating": "Warm",
        "tags": "VIP, Gold", "extra": {"Favourite_Colour": "blue", "Empty_One": ""}});
    assert_eq!(m.dedupe_key(&record), "1-");
    let out = m.map_record(&record, now());
    assert_eq!((out.status, &out.warnings), (RecordStatus::Mapped, &vec![]));
    assert_eq!(
        bodies(&out),
        vec![
            (
                OperationKind::User,
                json!({"userId": "Asha.Rao", "company": "Acme", "attributes": {
                "score": 7, "rating": 2, "missing_rating": 0, "tags": ["vip", "gold"],
                "nested": {"a": "Asha"}, "list": ["Asha", "x"], "first_of": "Rao", "constant": "$.not_a_path",
                "hashed": "b22b87fd8ac6c19a6ed4ffd686a6130f5972367a9520a1b8aef33b8b5b5e3340",
                "x_favouriteColour": "blue"}})
            ),
            (
                OperationKind::Event,
                json!({"userId": "Asha.Rao", "eventName": "One", "eventTime": "2026-01-01T00:00:00+0000"})
            ),
            (
                OperationKind::Event,
                json!({"userId": "Asha.Rao", "eventName": "person seen", "eventTime": "2024-01-15T10:30:00+0000"})
            ),
        ]
    );
    let ignored = m.map_record(&json!({"kind": "robot"}), now());
    assert_eq!(
        (ignored.status, ignored.operations.len()),
        (RecordStatus::Ignored, 0)
    );
}

#[test]
fn event_without_any_user_id_fails_and_transactions_take_the_user() {
    let text = r#"
source: { format: json, auth: none }
rules:
  - name: lonely-event
    event: { eventName: Ping }
  - name: txn
    user: { userId: $.email }
    transaction: { campaignId: abc123, ttl: 300, overrideData: { context: { object: { token: { object: { otp: $.otp } } } } } }
"#;
    let m = SourceMapping::from_yaml_str(Path::new("t.yaml"), text).expect("loads");
    let out = m.map_record(&json!({"email": "a@b.co", "otp": "1234"}), now());
    assert_eq!(out.status, RecordStatus::Failed);
    assert_eq!(
        out.error().as_deref(),
        Some("rule `lonely-event` failed: event has no userId (and the rule has no user with one)")
    );
    assert_eq!(
        bodies(&out),
        vec![
            (OperationKind::User, json!({"userId": "a@b.co"})),
            (
                OperationKind::Transaction,
                json!({"campaignId": "abc123", "ttl": 300,
                "overrideData": {"context": {"token": {"otp": "1234"}}}, "userId": "a@b.co"})
            ),
        ]
    );
}

#[test]
fn load_dir_skips_non_sources_and_fails_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = "source: { format: json, auth: none }\nrules: []\n";
    std::fs::write(dir.path().join("good.yaml"), ok).expect("write");
    std::fs::write(dir.path().join("_draft.yaml"), "not: [valid").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    let set = MappingSet::load_dir(dir.path()).expect("loads");
    assert_eq!(set.source_ids().collect::<Vec<_>>(), ["good"]);
    std::fs::write(
        dir.path().join("bad.yml"),
        "source: { format: json }\nrules: []\n",
    )
    .expect("write");
    let err = MappingSet::load_dir(dir.path()).expect_err("one bad file fails the set");
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].file.ends_with("bad.yml"));
}
