//! `source.import`: how rows of an exported file (`webengage-bridge import`) become the
//! record a webhook would carry. A CSV cell is text; the mapping says which columns
//! hold numbers, yes/no values or dates, and may rename columns whose exported header
//! differs from the field name the webhook uses (a report's "Lead Source" for
//! `LeadSource`). Only imports read this section.

use std::collections::HashMap;

use serde_json::Value;

use super::check::Ctx;
use super::yaml_tree::{Pos, SNode, get};

pub const KEYS: &[&str] = &["columns", "renames"];
/// The types a column may be given (`source.import.columns`).
pub const COLUMN_TYPES: &[&str] = &["text", "number", "boolean", "date"];

/// What a column's cells are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// A JSON number (an integer when the cell is one).
    Number,
    /// `true`/`false` from true/false, yes/no, y/n, 1/0, on/off.
    Boolean,
    /// Any date or time form the `datetime` transform reads, as RFC 3339 UTC text
    /// (times without an offset are UTC).
    Date,
}

/// `source.import`, compiled; the default has no typed and no renamed column.
#[derive(Debug, Clone, Default)]
pub struct ImportSpec {
    columns: HashMap<String, ColumnType>,
    renames: HashMap<String, String>,
}

impl ImportSpec {
    /// The field name a column's cells go under.
    pub fn field_name<'a>(&'a self, column: &'a str) -> &'a str {
        self.renames.get(column).map_or(column, String::as_str)
    }

    /// A non-empty cell of `column` (its header as exported) as the record's value.
    pub fn cell(&self, column: &str, text: &str) -> Result<Value, String> {
        let kind = self
            .columns
            .get(column)
            .or_else(|| self.columns.get(self.field_name(column)))
            .copied()
            .unwrap_or(ColumnType::Text);
        match kind {
            ColumnType::Text => Ok(Value::String(text.to_owned())),
            ColumnType::Number => {
                number(text).ok_or_else(|| format!("column `{column}`: `{text}` is not a number"))
            }
            ColumnType::Boolean => super::transform::to_bool(&Value::String(text.to_owned()))
                .map(Value::Bool)
                .map_err(|e| format!("column `{column}`: `{text}` is {e}")),
            ColumnType::Date => {
                super::datetime::parse_datetime(text, None, &jiff::tz::TimeZone::UTC)
                    .map(|ts| Value::String(ts.to_string()))
                    .map_err(|e| format!("column `{column}`: `{text}`: {e}"))
            }
        }
    }
}

fn number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

pub fn compile(ctx: &mut Ctx, node: &SNode) -> Option<ImportSpec> {
    let entries = ctx.map(node, "`import`")?;
    ctx.check_keys(entries, KEYS, "import");
    let mut spec = ImportSpec::default();
    if let Some(columns) = get(entries, "columns").and_then(|c| ctx.map(c, "`columns`")) {
        for (name, kind) in columns {
            let Some(text) = ctx.string(kind, "a column type") else {
                continue;
            };
            let kind = match text {
                "text" => ColumnType::Text,
                "number" => ColumnType::Number,
                "boolean" => ColumnType::Boolean,
                "date" => ColumnType::Date,
                other => {
                    ctx.err(
                        Pos::of(kind),
                        format!(
                            "unknown column type `{other}`; write one of: {}",
                            COLUMN_TYPES.join(", ")
                        ),
                    );
                    continue;
                }
            };
            spec.columns.insert(name.value.clone(), kind);
        }
    }
    if let Some(renames) = get(entries, "renames").and_then(|r| ctx.map(r, "`renames`")) {
        for (from, to) in renames {
            if let Some(to) = ctx.string(to, "a column's new name") {
                spec.renames.insert(from.value.clone(), to.to_owned());
            }
        }
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use crate::mapping::SourceMapping;

    fn spec(import: &str) -> Result<SourceMapping, crate::mapping::LoadErrors> {
        let yaml = format!(
            "source:\n  format: json\n  auth: none\n  import: {import}\nrules:\n  - name: r\n    user: {{ userId: $.Id }}\n"
        );
        SourceMapping::from_yaml_str(Path::new("s.yaml"), &yaml)
    }

    #[test]
    fn typed_columns_become_json_values_and_bad_cells_say_why() {
        let m = spec("{ columns: { Score: number, Opt: boolean, At: date }, renames: { \"Lead Source\": LeadSource } }")
            .unwrap();
        let s = &m.import;
        assert_eq!(s.cell("Score", "42").unwrap(), json!(42));
        assert_eq!(s.cell("Score", "4.5").unwrap(), json!(4.5));
        assert_eq!(s.cell("Opt", "Yes").unwrap(), json!(true));
        assert_eq!(
            s.cell("At", "2024-01-15 10:30:00").unwrap(),
            json!("2024-01-15T10:30:00Z")
        );
        assert_eq!(s.cell("Other", "007").unwrap(), json!("007"));
        assert_eq!(s.field_name("Lead Source"), "LeadSource");
        assert!(
            s.cell("Score", "many")
                .unwrap_err()
                .contains("`many` is not a number")
        );
        assert!(s.cell("Opt", "maybe").is_err());
        assert!(s.cell("At", "someday").is_err());
    }

    #[test]
    fn unknown_types_and_keys_are_load_errors() {
        let e = spec("{ columns: { Score: integer }, rename: {} }").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown column type `integer`"), "{text}");
        assert!(text.contains("unknown key `rename`"), "{text}");
    }
}
