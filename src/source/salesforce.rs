//! Salesforce outbound messages: a SOAP document in, one record per `Notification`, the Ack out.
//!
//! The body is hostile until checked: a linear pre-scan (`xml_guard`) caps attributes,
//! namespaces, nesting and nodes before roxmltree builds a tree; roxmltree refuses DTDs
//! (so no custom entities and no external entities: XXE and billion laughs fail at the
//! DOCTYPE), caps the node count and knows only the five predefined entities.
//!
//! Elements are matched by namespace URI, never by prefix, since senders may pick any
//! prefix. `SessionId` is a live session token when present: it is never read into a
//! record, an error or a log line.
//!
//! A field holding child elements (a compound field such as an address, which outbound
//! messages do not normally carry) becomes a nested object built by the same rules,
//! so nothing the sender chose to include is silently dropped.

use roxmltree::{Document, Node, ParsingOptions};
use serde_json::{Map, Value};

use super::json::{content_hash, one_line};
use super::{BodyError, ParsedBody, xml_guard};

/// The acknowledgement Salesforce expects; one covers every notification of a message.
pub const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const OUTBOUND: &str = "http://soap.sforce.com/2005/09/outbound";
const SOBJECT: &str = "urn:sobject.enterprise.soap.sforce.com";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Salesforce sends 1 to 100 notifications per message.
pub const MAX_NOTIFICATIONS: usize = 100;
/// A real message nests 6 levels (Envelope/Body/notifications/Notification/sObject/field).
pub const MAX_DEPTH: usize = 32;
/// 100 notifications of a few hundred fields stay far below this; it bounds memory for
/// bodies made of millions of tiny elements or attributes (both count).
pub const MAX_NODES: u32 = 200_000;

/// Parses a SOAP outbound message into records shaped as `mapping-language.md` says,
/// except that `SessionId` is left out (it is a credential).
pub fn parse_notifications(body: &[u8]) -> Result<ParsedBody, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        BodyError(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    // roxmltree wants the text after a byte order mark, which some proxies keep.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    xml_guard::check(
        text,
        xml_guard::Limits {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES as usize,
        },
    )?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(xml_error)?;
    check_depth(&doc)?;

    let envelope = doc.root_element();
    if !envelope.has_tag_name((SOAP_ENV, "Envelope")) {
        return Err(not_outbound("the root is not a SOAP 1.1 Envelope"));
    }
    let body = child(envelope, SOAP_ENV, "Body")?.ok_or_else(|| not_outbound("no SOAP Body"))?;
    let notifications = child(body, OUTBOUND, "notifications")?
        .ok_or_else(|| not_outbound("no notifications element"))?;

    // Envelope-level fields are copied into every record, so a rule can read them.
    let mut common = Map::new();
    for name in ["OrganizationId", "ActionId", "EnterpriseUrl", "PartnerUrl"] {
        if let Some(node) = child(notifications, OUTBOUND, name)? {
            common.insert(name.to_owned(), value_of(node)?);
        }
    }
    let organization_id = match common.get("OrganizationId") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(not_outbound("no OrganizationId")),
    };

    let mut records = Vec::new();
    for node in notifications
        .children()
        .filter(|n| n.has_tag_name((OUTBOUND, "Notification")))
    {
        if records.len() == MAX_NOTIFICATIONS {
            return Err(BodyError(format!(
                "more than {MAX_NOTIFICATIONS} notifications in one message"
            )));
        }
        let mut record = notification(node, records.len() + 1)?;
        record.extend(common.clone());
        records.push(Value::Object(record));
    }
    if records.is_empty() {
        return Err(not_outbound("no Notification element"));
    }
    Ok(ParsedBody {
        records,
        organization_id: Some(organization_id),
    })
}

/// `OrganizationId:NotificationId`, the org id cut to its 15-character form so that the
/// 15- and 18-character spellings of one org dedupe together. A record not shaped by
/// `parse_notifications` (no ids) falls back to its content hash.
pub fn dedupe_key(record: &Value) -> String {
    match (record.get("OrganizationId"), record.get("Id")) {
        (Some(Value::String(org)), Some(Value::String(id))) => {
            let org15: String = org.chars().take(15).collect();
            format!("{org15}:{id}")
        }
        _ => content_hash(record),
    }
}

/// A SOAP 1.1 Fault (faultcode `soapenv:Server`) for failures on our side, such as
/// storage: Salesforce treats it as "not acknowledged" and retries.
pub fn soap_fault(message: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode>",
            "<faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
        xml_escape(message)
    )
}

/// Escapes text for element content and attributes. Characters XML 1.0 cannot carry at
/// all (most C0 controls) become spaces, so the fault stays well-formed whatever the message.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn notification(node: Node<'_, '_>, index: usize) -> Result<Map<String, Value>, BodyError> {
    let id = match child(node, OUTBOUND, "Id")?.map(value_of).transpose()? {
        Some(Value::String(id)) => id,
        _ => return Err(BodyError(format!("notification {index} has no Id"))),
    };
    let sobject = child(node, OUTBOUND, "sObject")?
        .ok_or_else(|| BodyError(format!("notification {index} has no sObject")))?;
    let type_name = sobject
        .attribute((XSI, "type"))
        .map(|t| t.rsplit_once(':').map_or(t, |(_, local)| local).trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BodyError(format!("notification {index}: sObject has no xsi:type")))?;

    let mut object = Map::new();
    object.insert("type".to_owned(), Value::String(type_name.to_owned()));
    fields_into(sobject, &mut object)
        .map_err(|e| BodyError(format!("notification {index}: {}", e.0)))?;

    let mut record = Map::new();
    record.insert("Id".to_owned(), Value::String(id));
    record.insert("sObject".to_owned(), Value::Object(object));
    Ok(record)
}

/// Copies the sObject-namespace children of `parent` into `object`. Elements in other
/// namespaces are not sObject fields and are skipped. A repeated field is an error:
/// picking one of two values silently would be guessing.
fn fields_into(parent: Node<'_, '_>, object: &mut Map<String, Value>) -> Result<(), BodyError> {
    for field in parent.children().filter(|n| n.is_element()) {
        if field.tag_name().namespace() != Some(SOBJECT) {
            continue;
        }
        let name = field.tag_name().name();
        if object.contains_key(name) {
            return Err(BodyError(one_line(&format!("field {name} appears twice"))));
        }
        object.insert(name.to_owned(), value_of(field)?);
    }
    Ok(())
}

/// `xsi:nil="true"` and empty elements are null (no value, never "clear"); an element with
/// children is a nested object; anything else is its text, entities decoded.
fn value_of(node: Node<'_, '_>) -> Result<Value, BodyError> {
    if matches!(
        node.attribute((XSI, "nil")).map(str::trim),
        Some("true" | "1")
    ) {
        return Ok(Value::Null);
    }
    if node.children().any(|n| n.is_element()) {
        let mut nested = Map::new();
        fields_into(node, &mut nested)?;
        return Ok(Value::Object(nested));
    }
    // Text may be split around comments or CDATA sections; join every piece.
    let text: String = node
        .children()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    Ok(if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    })
}

/// The only child element with that expanded name; two are an error, since the message
/// would be ambiguous (e.g. two OrganizationIds: which one did auth check?).
fn child<'a, 'i>(
    parent: Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Result<Option<Node<'a, 'i>>, BodyError> {
    let mut found = parent.children().filter(|n| n.has_tag_name((ns, name)));
    let first = found.next();
    if first.is_some() && found.next().is_some() {
        return Err(BodyError(format!("element {name} appears twice")));
    }
    Ok(first)
}

/// roxmltree does not limit nesting itself. Node ids follow document order, so a parent's
/// depth is always known before its children's: one pass, no recursion.
fn check_depth(doc: &Document<'_>) -> Result<(), BodyError> {
    let mut depth: Vec<usize> = Vec::new();
    for node in doc.descendants() {
        let d = node
            .parent()
            .and_then(|p| depth.get(p.id().get_usize()).copied())
            .map_or(0, |d| d + 1);
        if d > MAX_DEPTH {
            return Err(BodyError(format!(
                "XML is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let id = node.id().get_usize();
        if depth.len() <= id {
            depth.resize(id + 1, 0);
        }
        depth[id] = d;
    }
    Ok(())
}

fn xml_error(e: roxmltree::Error) -> BodyError {
    use roxmltree::Error as E;
    BodyError(match e {
        E::DtdDetected => "DTDs are not accepted".to_owned(),
        E::NodesLimitReached => format!("the XML document has more than {MAX_NODES} nodes"),
        // roxmltree's messages name positions and tags, never text content.
        other => one_line(&format!(
            "XML is malformed at line {}: {other}",
            other.pos().row
        )),
    })
}

fn not_outbound(why: &str) -> BodyError {
    BodyError(format!("not a Salesforce outbound message: {why}"))
}

#[cfg(test)]
#[path = "salesforce_tests.rs"]
mod tests;
