//! Tests of the Salesforce outbound-message parser (kept apart to keep files short).

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::source::test_support::fixture;

const ORG18: &str = "00D5j00000KqRtBEAV";

/// An outbound message with `n` notifications, each sObject holding `fields` verbatim.
fn message(n: usize, session: &str, fields: &str) -> String {
    let notes: String = (0..n)
        .map(|i| {
            format!(
                r#"<Notification><Id>04l5j00000Bq{i:06}</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q5j00000Hk4TbEAJ</sf:Id>{fields}</sObject></Notification>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>{ORG18}</OrganizationId><ActionId>04k5j000000TxQmAAK</ActionId>{session}
<EnterpriseUrl>https://e.example/c</EnterpriseUrl><PartnerUrl>https://e.example/u</PartnerUrl>
{notes}</notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

fn parse(xml: &str) -> Result<ParsedBody, BodyError> {
    parse_notifications(xml.as_bytes())
}

fn sobject(xml: &str) -> Value {
    let parsed = parse(xml).unwrap();
    parsed.records[0]["sObject"].clone()
}

#[test]
fn lead_fixture_becomes_the_documented_record() {
    let parsed = parse_notifications(&fixture("sf_outbound_lead_single.xml")).unwrap();
    assert_eq!(parsed.organization_id.as_deref(), Some(ORG18));
    let expected = json!({
        "Id": "04l5j00000Bq8LdAAJ",
        "sObject": {
            "type": "Lead",
            "Id": "00Q5j00000Hk4TbEAJ",
            "City": "Pune",
            "Company": "Rao & Iyer Consulting",
            "Country": "India",
            "CreatedDate": "2024-01-15T10:30:00.000Z",
            "Email": "meera.iyer@example.com",
            "FirstName": "Meera",
            "HasOptedOutOfEmail": "false",
            "LastModifiedDate": "2024-01-15T10:30:04.000Z",
            "LastName": "Iyer",
            "LeadSource": "Web",
            "MobilePhone": "+91 98765 43210",
            "OwnerId": "0055j00000Fg1HkAAJ",
            "Phone": "(020) 4567 8901",
            "Product_Interest__c": "Data Science Bootcamp",
            "Status": "Open - Not Contacted",
            "WebEngage_Opt_In__c": "true"
        },
        "OrganizationId": ORG18,
        "ActionId": "04k5j000000TxQmAAK",
        "EnterpriseUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/c/60.0/00D5j00000KqRtB",
        "PartnerUrl": "https://brightpath-learning.my.salesforce.com/services/Soap/u/60.0/00D5j00000KqRtB"
    });
    assert_eq!(parsed.records, vec![expected]);
    // The exact key order too (preserve_order): notification fields first, as documented.
    let keys: Vec<&str> = parsed.records[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Id",
            "sObject",
            "OrganizationId",
            "ActionId",
            "EnterpriseUrl",
            "PartnerUrl"
        ]
    );
    assert!(parsed.records[0].get("SessionId").is_none());
    assert_eq!(
        dedupe_key(&parsed.records[0]),
        "00D5j00000KqRtB:04l5j00000Bq8LdAAJ"
    );
}

#[test]
fn contact_fixture_keeps_dates_and_booleans_as_text() {
    let parsed = parse_notifications(&fixture("sf_outbound_contact.xml")).unwrap();
    assert_eq!(parsed.records.len(), 1);
    let r = &parsed.records[0];
    assert_eq!(r["Id"], "04l5j00000Bq9MnAAJ");
    assert_eq!(r["ActionId"], "04k5j000000TxRqAAK");
    let o = &r["sObject"];
    assert_eq!(o["type"], "Contact");
    assert_eq!(o["Id"], "0035j00000Lm2VxAAJ");
    assert_eq!(o["Birthdate"], "1991-04-12");
    assert_eq!(o["HasOptedOutOfEmail"], "false");
    assert_eq!(o["MailingPostalCode"], "560034");
    assert_eq!(o.as_object().unwrap().len(), 18);
}

#[test]
fn malformed_fixture_is_a_one_line_error() {
    let err = parse_notifications(&fixture("sf_outbound_malformed.xml")).unwrap_err();
    assert!(err.0.starts_with("XML is malformed at line "), "{err}");
    assert!(!err.0.contains('\n'));
}

#[test]
fn nil_empty_and_absent_fields() {
    let o = sobject(&message(
        1,
        "",
        r#"<sf:Phone xsi:nil="true"/><sf:Title></sf:Title><sf:City/><sf:Street> </sf:Street>"#,
    ));
    assert_eq!(o["Phone"], Value::Null);
    assert_eq!(o["Title"], Value::Null);
    assert_eq!(o["City"], Value::Null);
    assert_eq!(o["Street"], " ");
    assert!(o.get("Email").is_none());
}

#[test]
fn text_is_decoded_and_non_ascii_kept() {
    let o = sobject(&message(
        1,
        "",
        "<sf:LastName>Müller-Łukasz 李</sf:LastName><sf:Company>A &lt;&amp;&gt; B &#233;</sf:Company>\
         <sf:Description>line1\nline2 <!-- c --><![CDATA[<raw>]]></sf:Description>",
    ));
    assert_eq!(o["LastName"], "Müller-Łukasz 李");
    assert_eq!(o["Company"], "A <&> B é");
    assert_eq!(o["Description"], "line1\nline2 <raw>");
}

#[test]
fn prefixes_do_not_matter_namespaces_do() {
    let xml = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
        <o:notifications xmlns:o="http://soap.sforce.com/2005/09/outbound" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
        <o:OrganizationId>00D5j00000KqRtB</o:OrganizationId>
        <o:Notification><o:Id>04l1</o:Id><o:sObject i:type="q:Custom__c" xmlns:q="urn:sobject.enterprise.soap.sforce.com">
        <q:Id>a005j</q:Id><q:Amount__c>12.50</q:Amount__c><other xmlns="urn:x">skip</other><q:Nil i:nil="1"/>
        </o:sObject></o:Notification></o:notifications></S:Body></S:Envelope>"#;
    let parsed = parse(xml).unwrap();
    assert_eq!(
        parsed.records[0]["sObject"],
        json!({"type": "Custom__c", "Id": "a005j", "Amount__c": "12.50", "Nil": null})
    );
    assert_eq!(parsed.records[0].get("ActionId"), None);

    // The right local names in the wrong namespace are not an outbound message.
    let wrong = message(1, "", "").replace("http://soap.sforce.com/2005/09/outbound", "urn:other");
    assert_eq!(
        parse(&wrong).unwrap_err().0,
        "not a Salesforce outbound message: no notifications element"
    );
}

#[test]
fn compound_fields_become_nested_objects() {
    let o = sobject(&message(
        1,
        "",
        "<sf:MailingAddress><sf:city>Pune</sf:city><sf:postalCode>411038</sf:postalCode></sf:MailingAddress>",
    ));
    assert_eq!(
        o["MailingAddress"],
        json!({"city": "Pune", "postalCode": "411038"})
    );
}

#[test]
fn session_id_never_leaves_the_parser() {
    let secret = "00D5j00000KqRtB!AQ4AQSECRETSESSIONTOKENxyz";
    let xml = message(
        2,
        &format!("<SessionId>{secret}</SessionId>"),
        "<sf:Email>a@b.c</sf:Email>",
    );
    let parsed = parse(&xml).unwrap();
    assert_eq!(parsed.records.len(), 2);
    for r in &parsed.records {
        assert!(r.get("SessionId").is_none());
        assert!(!r.to_string().contains("SECRET"));
    }
    assert!(!format!("{parsed:?}").contains("SECRET"));

    // Nor from errors when the document breaks right after it.
    let broken = &xml[..xml.find("</SessionId>").unwrap_or(0) + 5];
    let err = parse(broken).unwrap_err();
    assert!(
        !err.0.contains("SECRET") && !format!("{err:?}").contains("SECRET"),
        "{err}"
    );
    let broken = xml.replace("</SessionId>", "</SessionIdX>");
    let err = parse(&broken).unwrap_err();
    assert!(!err.0.contains("SECRET"), "{err}");
}

#[test]
fn notification_count_limits() {
    let parsed = parse(&message(100, "", "")).unwrap();
    assert_eq!(parsed.records.len(), 100);
    assert_eq!(parsed.records[99]["Id"], "04l5j00000Bq000099");
    assert_eq!(
        parse(&message(101, "", "")).unwrap_err().0,
        "more than 100 notifications in one message"
    );
    assert_eq!(
        parse(&message(0, "", "")).unwrap_err().0,
        "not a Salesforce outbound message: no Notification element"
    );
}

#[test]
fn dtds_and_entities_are_refused_fast() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<lolz>&lol3;</lolz>"#;
    let start = Instant::now();
    assert_eq!(parse(laughs).unwrap_err().0, "DTDs are not accepted");
    assert!(start.elapsed() < Duration::from_secs(1));

    let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
    assert_eq!(parse(xxe).unwrap_err().0, "DTDs are not accepted");

    // Without a DTD an entity reference is simply unknown.
    let err = parse(&message(1, "", "<sf:City>&xxe;</sf:City>")).unwrap_err();
    assert!(
        err.0
            .starts_with("XML is malformed at line 6: unknown entity reference 'xxe'"),
        "{err}"
    );
}

#[test]
fn hostile_shapes_are_refused() {
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let err = parse(&deep).unwrap_err();
    assert_eq!(err.0, "XML is nested deeper than 32 levels");

    let wide = format!("<a>{}</a>", "<b/>".repeat(300_000));
    assert_eq!(
        parse(&wide).unwrap_err().0,
        "the XML document has more than 200000 nodes"
    );

    // One element with 160,000 attributes took 47.8 s in roxmltree's duplicate check.
    let attribute_bomb = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV}\"{}/>",
        (0..160_000)
            .map(|i| format!(" a{i}=\"\""))
            .collect::<String>()
    );
    let started = Instant::now();
    assert_eq!(
        parse(&attribute_bomb).unwrap_err().0,
        "an XML element has more than 16 attributes"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Many elements of a few attributes each: the attributes count as nodes.
    let attributes = format!("<a>{}</a>", "<b x=\"1\" y=\"2\"/>".repeat(70_000));
    assert_eq!(
        parse(&attributes).unwrap_err().0,
        "the XML document has more than 200000 nodes"
    );

    assert_eq!(
        parse_notifications(b"<a>\xff</a>").unwrap_err().0,
        "the body is not UTF-8 (invalid byte at offset 3)"
    );
    assert!(parse("").unwrap_err().0.starts_with("XML is malformed"));
    assert_eq!(
        parse("<root/>").unwrap_err().0,
        "not a Salesforce outbound message: the root is not a SOAP 1.1 Envelope"
    );
    // A BOM is fine.
    assert!(parse(&format!("\u{feff}{}", message(1, "", ""))).is_ok());
}

#[test]
fn ambiguous_or_incomplete_notifications_are_refused() {
    let dup = message(1, "", "<sf:Email>a@x</sf:Email><sf:Email>b@x</sf:Email>");
    assert_eq!(
        parse(&dup).unwrap_err().0,
        "notification 1: field Email appears twice"
    );

    let two_orgs = message(1, "", "").replace(
        "<ActionId>",
        "<OrganizationId>00D000000000001</OrganizationId><ActionId>",
    );
    assert_eq!(
        parse(&two_orgs).unwrap_err().0,
        "element OrganizationId appears twice"
    );

    let no_org =
        message(1, "", "").replace(&format!("<OrganizationId>{ORG18}</OrganizationId>"), "");
    assert_eq!(
        parse(&no_org).unwrap_err().0,
        "not a Salesforce outbound message: no OrganizationId"
    );

    let no_type = message(1, "", "").replace(r#"xsi:type="sf:Lead""#, "");
    assert_eq!(
        parse(&no_type).unwrap_err().0,
        "notification 1: sObject has no xsi:type"
    );

    let no_id = message(1, "", "").replace("<Id>04l5j00000Bq000000</Id>", "");
    assert_eq!(parse(&no_id).unwrap_err().0, "notification 1 has no Id");
}

#[test]
fn dedupe_key_uses_the_15_character_org_id() {
    let r18 = json!({"Id": "04l5j00000Bq8LdAAJ", "OrganizationId": "00D5j00000KqRtBEAV"});
    let r15 = json!({"Id": "04l5j00000Bq8LdAAJ", "OrganizationId": "00D5j00000KqRtB"});
    assert_eq!(dedupe_key(&r18), "00D5j00000KqRtB:04l5j00000Bq8LdAAJ");
    assert_eq!(dedupe_key(&r18), dedupe_key(&r15));
    let other = json!({"Id": "04l5j00000Bq8LeAAJ", "OrganizationId": "00D5j00000KqRtB"});
    assert_ne!(dedupe_key(&other), dedupe_key(&r15));
    let odd = json!({"x": 1});
    assert_eq!(dedupe_key(&odd), content_hash(&odd));
}

/// Element names, namespaces and trimmed text, in document order.
fn shape(xml: &str) -> Vec<(Option<String>, String, String)> {
    let doc = Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.is_element())
        .map(|n| {
            let text: String = n
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect();
            (
                n.tag_name().namespace().map(str::to_owned),
                n.tag_name().name().to_owned(),
                text.trim().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ack_matches_the_expected_response() {
    let expected = String::from_utf8(fixture("sf_ack_response.xml")).unwrap();
    assert_eq!(shape(ACK), shape(&expected));
}

#[test]
fn soap_fault_is_well_formed_and_escaped() {
    let fault = soap_fault("db <down> & \"out\"\u{1}");
    let doc = Document::parse(&fault).unwrap();
    let fault_el = doc
        .descendants()
        .find(|n| n.has_tag_name((SOAP_ENV, "Fault")))
        .unwrap();
    let text = |name: &str| {
        fault_el
            .children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .unwrap()
            .to_owned()
    };
    assert_eq!(text("faultcode"), "soapenv:Server");
    assert_eq!(text("faultstring"), "db <down> & \"out\" ");
    // The two noncharacters XML 1.0 cannot carry either, each on its own.
    for odd in ["a\u{fffe}b", "a\u{ffff}b"] {
        let fault = soap_fault(odd);
        assert!(
            fault.contains("<faultstring>a b</faultstring>"),
            "{fault:?}"
        );
    }
    // Tabs and line breaks are fine in XML and stay.
    assert!(soap_fault("a\tb\nc").contains("<faultstring>a\tb\nc</faultstring>"));
}

#[test]
fn the_parsers_own_depth_check_stands_without_the_guard() {
    // `xml_guard` refuses deep documents first; this check must hold on its own too,
    // should the guard's limits ever be loosened.
    let nested = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    let ok = nested(MAX_DEPTH);
    assert!(check_depth(&Document::parse(&ok).unwrap()).is_ok());
    let deep = nested(MAX_DEPTH + 1);
    assert_eq!(
        check_depth(&Document::parse(&deep).unwrap()).unwrap_err().0,
        "XML is nested deeper than 32 levels"
    );
    let wide = format!("<r>{}</r>", "<a><b/></a>".repeat(50));
    assert!(check_depth(&Document::parse(&wide).unwrap()).is_ok());
}

#[test]
fn text_nodes_count_against_the_parsers_node_limit() {
    // The pre-scan counts elements and attributes; the text between 150,000 elements
    // adds as many nodes again, which the DOM parser's own limit refuses.
    let texty = format!("<a>{}</a>", "<b/>x".repeat(150_000));
    assert_eq!(
        parse(&texty).unwrap_err().0,
        "the XML document has more than 200000 nodes"
    );
}
