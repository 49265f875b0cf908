//! Salesforce outbound messages: a SOAP document in, one record per `Notification`, the Ack out.

use serde_json::Value;

use super::{BodyError, ParsedBody};

/// The acknowledgement Salesforce expects; one covers every notification of a message.
pub const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

/// Parses a SOAP outbound message into records shaped as `mapping-language.md` says.
pub fn parse_notifications(body: &[u8]) -> Result<ParsedBody, BodyError> {
    let _ = body;
    todo!("salesforce parser")
}

/// `OrganizationId:NotificationId`.
pub fn dedupe_key(record: &Value) -> String {
    let _ = record;
    todo!("salesforce dedupe key")
}

pub fn soap_fault(message: &str) -> String {
    let _ = message;
    todo!()
}
