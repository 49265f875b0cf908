//! An exported row as the record a webhook of its source would carry, so one mapping
//! file serves both paths.
//!
//! CSV cells are text; `source.import` in the mapping says which columns hold
//! numbers, yes/no values or dates, and renames columns. Empty cells are absent, as a
//! field the CRM left empty is absent from its webhook. For a `salesforce-outbound`
//! source the fields go into `sObject` with its `type`, as an outbound message's do.

use serde_json::{Map, Value};

use super::input::{Original, REJECT_COLUMNS, RawRow, RowContent, csv_line};
use crate::mapping::SourceMapping;
use crate::source::SourceFormat;

/// Salesforce key prefixes (the first three characters of a record Id) of the objects
/// an export usually holds.
const KEY_PREFIXES: [(&str, &str); 4] = [
    ("00Q", "Lead"),
    ("003", "Contact"),
    ("001", "Account"),
    ("006", "Opportunity"),
];

/// The record, or why the row cannot be one; either way with the row's text for the
/// rejects file when needed.
pub fn record_of(
    row: &RawRow,
    mapping: &SourceMapping,
    object: Option<&str>,
) -> Result<Value, Rejected> {
    let fields = match &row.content {
        RowContent::Csv { headers, cells } => {
            csv_fields(mapping, headers, cells).map_err(|reason| Rejected::new(row, reason))?
        }
        RowContent::Json(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => {
                return Err(Rejected::new(
                    row,
                    format!(
                        "a record must be a JSON object, not {}",
                        crate::source::json::kind(&other)
                    ),
                ));
            }
            Err(e) => return Err(Rejected::new(row, format!("not JSON: {e}"))),
        },
        RowContent::Broken { reason, .. } => return Err(Rejected::new(row, reason.clone())),
    };
    match mapping.format {
        SourceFormat::SalesforceOutbound => {
            salesforce_record(fields, object).map_err(|reason| Rejected::new(row, reason))
        }
        SourceFormat::LeadSquared | SourceFormat::Json => Ok(Value::Object(fields)),
    }
}

fn csv_fields(
    mapping: &SourceMapping,
    headers: &[String],
    cells: &csv::ByteRecord,
) -> Result<Map<String, Value>, String> {
    let mut fields = Map::new();
    for (column, cell) in headers.iter().zip(cells.iter()) {
        if cell.is_empty() || REJECT_COLUMNS.contains(&column.as_str()) {
            continue;
        }
        let text = std::str::from_utf8(cell)
            .map_err(|_| format!("column `{column}` is not UTF-8 text"))?;
        let value = mapping.import.cell(column, text)?;
        fields.insert(mapping.import.field_name(column).to_owned(), value);
    }
    Ok(fields)
}

/// `{"sObject": {"type": …, fields…}}`, as `source::salesforce` reads a notification;
/// a row already shaped so (a JSON line with an `sObject`) is kept.
fn salesforce_record(
    mut fields: Map<String, Value>,
    object: Option<&str>,
) -> Result<Value, String> {
    if let Some(Value::Object(_)) = fields.get("sObject") {
        return Ok(Value::Object(fields));
    }
    let type_name = match (object, fields.get("type")) {
        (Some(object), _) => object.to_owned(),
        (None, Some(Value::String(t))) if !t.is_empty() => t.clone(),
        _ => {
            let id = fields.get("Id").and_then(Value::as_str).unwrap_or("");
            KEY_PREFIXES
                .iter()
                .find(|(prefix, _)| id.starts_with(prefix))
                .map(|(_, name)| (*name).to_owned())
                .ok_or_else(|| {
                    format!(
                        "cannot tell the object type from the Id `{id}` (00Q Lead, 003 Contact, 001 Account, 006 Opportunity): pass --object"
                    )
                })?
        }
    };
    fields.insert("type".to_owned(), Value::String(type_name));
    let mut record = Map::new();
    record.insert("sObject".to_owned(), Value::Object(fields));
    Ok(Value::Object(record))
}

/// A row for the rejects file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
    /// The row's cells (CSV) or its text (JSON), as read.
    pub original: Original,
}

impl Rejected {
    pub fn new(row: &RawRow, reason: String) -> Self {
        let original = match &row.content {
            RowContent::Csv { cells, .. } => Original::Cells(
                cells
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect(),
            ),
            RowContent::Json(text) => Original::Text(text.clone()),
            RowContent::Broken { original, .. } => original.clone(),
        };
        Rejected {
            line: row.line,
            reason,
            original,
        }
    }

    /// The row as one CSV line (for showing in a dry run).
    pub fn row_text(&self) -> String {
        match &self.original {
            Original::Cells(cells) => csv_line(&csv::ByteRecord::from(cells.clone())),
            Original::Text(text) => text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn mapping(format: &str) -> SourceMapping {
        let yaml = format!(
            "source:\n  format: {format}\n  auth: none\n  import: {{ columns: {{ Score: number }}, renames: {{ \"Lead Source\": LeadSource }} }}\nrules:\n  - name: r\n    user: {{ userId: $.Id }}\n"
        );
        SourceMapping::from_yaml_str(Path::new("s.yaml"), &yaml).unwrap()
    }

    fn csv_row(headers: &[&str], cells: &[&str]) -> RawRow {
        RawRow {
            line: 2,
            content: RowContent::Csv {
                headers: headers
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect::<Vec<_>>()
                    .into(),
                cells: csv::ByteRecord::from(cells.to_vec()),
            },
        }
    }

    #[test]
    fn csv_cells_are_typed_renamed_and_empty_ones_absent() {
        let row = csv_row(
            &["Id", "Score", "Lead Source", "City", "rejected_reason"],
            &["7", "12", "Web", "", "old"],
        );
        let record = record_of(&row, &mapping("leadsquared"), None).unwrap();
        assert_eq!(record, json!({"Id": "7", "Score": 12, "LeadSource": "Web"}));
        let bad = csv_row(&["Id", "Score"], &["7", "twelve"]);
        let rejected = record_of(&bad, &mapping("json"), None).unwrap_err();
        assert_eq!(rejected.line, 2);
        assert_eq!(rejected.reason, "column `Score`: `twelve` is not a number");
        assert_eq!(rejected.row_text(), "7,twelve");
    }

    #[test]
    fn salesforce_rows_become_an_sobject_typed_by_object_or_key_prefix() {
        let sf = mapping("salesforce-outbound");
        let lead = csv_row(&["Id", "Email"], &["00Q5j00000AbCdE", "a@b.co"]);
        assert_eq!(
            record_of(&lead, &sf, None).unwrap(),
            json!({"sObject": {"Id": "00Q5j00000AbCdE", "Email": "a@b.co", "type": "Lead"}})
        );
        assert_eq!(
            record_of(&csv_row(&["Id"], &["0035j0000012345"]), &sf, None).unwrap()["sObject"]["type"],
            "Contact"
        );
        assert_eq!(
            record_of(
                &csv_row(&["Id"], &["a0X5j0000012345"]),
                &sf,
                Some("Invoice__c")
            )
            .unwrap()["sObject"]["type"],
            "Invoice__c"
        );
        let unknown = record_of(&csv_row(&["Id"], &["a0X5j0000012345"]), &sf, None).unwrap_err();
        assert!(
            unknown.reason.contains("pass --object"),
            "{}",
            unknown.reason
        );
        let shaped = RawRow {
            line: 1,
            content: RowContent::Json(r#"{"sObject": {"type": "Lead", "Id": "x"}}"#.into()),
        };
        assert_eq!(record_of(&shaped, &sf, None).unwrap()["sObject"]["Id"], "x");
    }
}
