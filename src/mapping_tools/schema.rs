//! `mappings schema`: a JSON Schema (draft-07, what YAML language servers handle best)
//! of a mapping file, for editors.
//!
//! Built from the same key lists the loader checks against (`compile`, `value`, `auth`,
//! `condition`, `star`, `transform`, `webengage::rules`), so the schema cannot accept a
//! key the loader refuses or miss one it accepts. Only the descriptions live here; a
//! test checks every key has one.

use serde_json::{Map, Value, json};

use crate::mapping::vocabulary::{auth, compile, condition, import, star, transform, value};
use crate::source::SourceFormat;
use crate::webengage::rules;

/// The schema of one mapping file.
pub fn mapping_file_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://github.com/webengage-bridge/schemas/mapping-file.json",
        "title": "webengage-bridge mapping file",
        "description": "One file per source: `mappings/<source-id>.yaml` serves POST /webhooks/<source-id>. See docs/mappings.md.",
        "type": "object",
        "additionalProperties": false,
        "required": ["source", "rules"],
        "properties": props("file", compile::TOP_KEYS, |k| match k {
            "source" => reference("source"),
            _ => json!({"type": "array", "items": reference("rule")}),
        }),
        "definitions": definitions(),
    })
}

fn definitions() -> Value {
    let mut d = Map::new();
    d.insert("source".into(), source());
    d.insert("auth".into(), auth_schema());
    d.insert("rule".into(), rule());
    d.insert("condition".into(), condition_schema());
    d.insert(
        "user".into(),
        with_key(
            payload("user", &user_keys(), "attributes"),
            "anyOf",
            json!([{"required": ["userId"]}, {"required": ["anonymousId"]}]),
        ),
    );
    d.insert(
        "event".into(),
        json_with_required(
            payload("event", compile::EVENT_KEYS, "eventData"),
            &["eventName"],
        ),
    );
    let mut transaction = json_with_required(
        payload("transaction", compile::TXN_KEYS, "overrideData"),
        &["campaignId"],
    );
    // `dedupe` is a literal checked at load, not a value computed per record.
    transaction["properties"]["dedupe"] = with_key(
        json_with_required(dedupe_schema(), &["ttl"]),
        "description",
        Value::from(describe("transaction", "dedupe")),
    );
    d.insert("transaction".into(), transaction);
    d.insert("attributes".into(), attributes());
    d.insert("star".into(), star_schema());
    d.insert("value".into(), value_schema());
    d.insert("valueMap".into(), value_map());
    d.insert("transform".into(), transform_schema());
    d.insert("path".into(), path());
    Value::Object(d)
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/definitions/{name}") })
}

/// `{ key: schema + description }` for each key; `$ref`s are wrapped in `allOf` because
/// draft-07 ignores keywords next to `$ref`, and editors would lose the description.
fn props(section: &str, keys: &[&str], schema_of: impl Fn(&str) -> Value) -> Value {
    let mut out = Map::new();
    for key in keys {
        let mut schema = schema_of(key);
        if schema.get("$ref").is_some() {
            schema = json!({ "allOf": [schema] });
        }
        if let Value::Object(m) = &mut schema {
            m.insert("description".into(), Value::from(describe(section, key)));
        }
        out.insert((*key).to_owned(), schema);
    }
    Value::Object(out)
}

fn json_with_required(schema: Value, required: &[&str]) -> Value {
    with_key(schema, "required", json!(required))
}

fn with_key(mut schema: Value, key: &str, value: Value) -> Value {
    if let Value::Object(m) = &mut schema {
        m.insert(key.to_owned(), value);
    }
    schema
}

fn strict_object(section: &str, keys: &[&str], schema_of: impl Fn(&str) -> Value) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": props(section, keys, schema_of),
    })
}

fn env_var() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"})
}

fn path() -> Value {
    json!({
        "type": "string",
        "pattern": "^\\s*\\$",
        "description": "A JSONPath (RFC 9535) starting with `$`, e.g. `$.sObject.Email`; the first node it selects.",
    })
}

fn source() -> Value {
    let schema = strict_object("source", compile::SOURCE_KEYS, |k| match k {
        "format" => json!({"type": "string", "enum": SourceFormat::ALL}),
        "auth" => reference("auth"),
        "records" => reference("path"),
        "dedupe_key" => json!({"type": "string"}),
        "import" => import_schema(),
        _ => json_with_required(
            strict_object("version", compile::VERSION_KEYS, |_| reference("path")),
            compile::VERSION_KEYS,
        ),
    });
    json_with_required(schema, &["format", "auth"])
}

/// `source.import`: column types and renames for `webengage-bridge import`.
fn import_schema() -> Value {
    strict_object("import", import::KEYS, |k| match k {
        "columns" => json!({
            "type": "object",
            "additionalProperties": {"type": "string", "enum": import::COLUMN_TYPES},
        }),
        _ => json!({"type": "object", "additionalProperties": {"type": "string"}}),
    })
}

fn auth_schema() -> Value {
    let checks = strict_object("auth", auth::KEYS, |k| match k {
        "bearer_env" => env_var(),
        "header" => json_with_required(
            strict_object("header", auth::HEADER_KEYS, |k| {
                if k == "value_env" {
                    env_var()
                } else {
                    json!({"type": "string"})
                }
            }),
            auth::HEADER_KEYS,
        ),
        "basic" => json_with_required(
            strict_object("basic", auth::BASIC_KEYS, |_| env_var()),
            auth::BASIC_KEYS,
        ),
        "hmac_sha256" => json_with_required(
            strict_object("hmac_sha256", auth::HMAC_KEYS, |k| match k {
                "secret_env" => env_var(),
                "encoding" => json!({"type": "string", "enum": auth::HMAC_ENCODINGS}),
                _ => json!({"type": "string"}),
            }),
            &["header", "secret_env"],
        ),
        "query" => json_with_required(
            strict_object("query", auth::QUERY_KEYS, |k| {
                if k == "value_env" {
                    env_var()
                } else {
                    json!({"type": "string"})
                }
            }),
            auth::QUERY_KEYS,
        ),
        _ => json!({
            "type": "array",
            "items": {"type": "string", "minLength": 15, "maxLength": 18},
        }),
    });
    json!({
        "oneOf": [
            {"const": "none", "description": "Accept unauthenticated requests (write it out explicitly)."},
            with_key(checks, "minProperties", json!(1)),
        ]
    })
}

fn rule() -> Value {
    let mut schema = strict_object("rule", compile::RULE_KEYS, |k| match k {
        "name" => json!({"type": "string", "minLength": 1}),
        "when" => reference("condition"),
        "stop" => json!({"type": "boolean"}),
        "user" => reference("user"),
        "event" => reference("event"),
        "events" => json!({"type": "array", "items": reference("event")}),
        _ => reference("transaction"),
    });
    if let Value::Object(m) = &mut schema {
        m.insert("required".into(), json!(["name"]));
        let produces: Vec<Value> = ["user", "event", "events", "transaction"]
            .iter()
            .map(|k| json!({"required": [k]}))
            .collect();
        m.insert("anyOf".into(), Value::Array(produces));
    }
    schema
}

fn condition_schema() -> Value {
    let mut schema = strict_object("condition", condition::KEYS, |k| match k {
        "path" => reference("path"),
        "in" => json!({"type": "array"}),
        "exists" => json!({"type": "boolean"}),
        "matches" => json!({"type": "string", "format": "regex"}),
        "all" | "any" => json!({"type": "array", "items": reference("condition")}),
        "not" => reference("condition"),
        _ => json!({"type": ["string", "number", "boolean", "null"]}),
    });
    let test = json!({
        "required": ["path"],
        "oneOf": condition::TESTS.iter().map(|t| json!({"required": [t]})).collect::<Vec<_>>(),
    });
    let mut forms = vec![test];
    forms.extend(
        ["all", "any", "not"]
            .iter()
            .map(|k| json!({"required": [k], "maxProperties": 1})),
    );
    if let Value::Object(m) = &mut schema {
        m.insert("oneOf".into(), Value::Array(forms));
    }
    schema
}

fn user_keys() -> Vec<&'static str> {
    let mut keys = rules::USER_FIELDS.to_vec();
    keys.push("attributes");
    keys
}

/// A `user`, `event` or `transaction`: its keys are values, `nested` is a map of custom attributes.
fn payload(section: &str, keys: &[&str], nested: &str) -> Value {
    strict_object(section, keys, |k| {
        if k == nested {
            reference("attributes")
        } else {
            reference("value")
        }
    })
}

fn dedupe_schema() -> Value {
    let ttl = rules::DEDUPE_TTL_SECONDS;
    strict_object(
        "dedupe",
        compile::DEDUPE_KEYS,
        |_| json!({"type": "integer", "minimum": ttl.start(), "maximum": ttl.end()}),
    )
}

fn attributes() -> Value {
    json!({
        "type": "object",
        "description": "Custom attributes: each key is an attribute name (under 50 characters, not starting `we_`), each value a value; `\"*\"` copies many fields at once.",
        "properties": { "*": reference("star") },
        "propertyNames": {
            "maxLength": rules::MAX_NAME_CHARS - 1,
            "not": {"pattern": format!("^{}", rules::RESERVED_PREFIX)},
        },
        "additionalProperties": reference("value"),
    })
}

fn star_schema() -> Value {
    let globs =
        json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
    strict_object("star", star::KEYS, |k| match k {
        "from" => reference("path"),
        "include" | "exclude" => globs.clone(),
        "rename" => json!({"type": "string", "enum": star::RENAMES}),
        _ => json!({"type": "string"}),
    })
}

fn value_schema() -> Value {
    json!({
        "description": "A YAML number, boolean or null (that literal); a string starting with `$` (a JSONPath); a string with `{{ $.path }}` (a template); any other string (that text); or a map with `path`, `template`, `const`, `object` or `array` plus modifiers.",
        "anyOf": [
            {"type": ["number", "boolean", "null", "string"]},
            reference("valueMap"),
        ],
    })
}

fn value_map() -> Value {
    let mut schema = strict_object("value", value::ALL_KEYS, |k| match k {
        "path" => {
            json!({"oneOf": [reference("path"), {"type": "array", "items": reference("path"), "minItems": 1}]})
        }
        "template" => json!({"type": "string"}),
        "const" | "default" => json!({}),
        "object" => reference("attributes"),
        "array" => json!({"type": "array", "items": reference("value")}),
        "transform" => {
            json!({"oneOf": [reference("transform"), {"type": "array", "items": reference("transform")}]})
        }
        "map" => json!({"type": "object"}),
        _ => json!({"type": "boolean"}),
    });
    if let Value::Object(m) = &mut schema {
        let one_source: Vec<Value> = value::SOURCE_KEYS
            .iter()
            .map(|k| json!({"required": [k]}))
            .collect();
        m.insert("oneOf".into(), Value::Array(one_source));
    }
    schema
}

/// The arguments of a transform that takes them, and whether it may also be written bare.
fn transform_args(name: &str) -> Option<(Value, bool)> {
    let args = match name {
        "phone" => json_with_required(
            strict_object(
                "phone",
                transform::PHONE_ARGS,
                |_| json!({"type": "string", "pattern": "^[A-Za-z]{2}$"}),
            ),
            transform::PHONE_ARGS,
        ),
        "datetime" | "date" => {
            let args = strict_object(
                "datetime",
                transform::DATETIME_ARGS,
                |_| json!({"type": "string"}),
            );
            return Some((json!({"oneOf": [args, {"type": "null"}]}), true));
        }
        "split" | "join" => json!({"type": "string"}),
        "truncate" => json!({"type": "integer", "minimum": 1}),
        "replace" => json_with_required(
            strict_object("replace", transform::REPLACE_ARGS, |k| {
                if k == "pattern" {
                    json!({"type": "string", "format": "regex"})
                } else {
                    json!({"type": "string"})
                }
            }),
            &["pattern"],
        ),
        _ => return None,
    };
    Some((args, false))
}

fn transform_schema() -> Value {
    let mut bare: Vec<&str> = transform::NO_ARGS.to_vec();
    let mut forms = Vec::new();
    for name in transform::NAMES {
        if let Some((args, bare_too)) = transform_args(name) {
            if bare_too {
                bare.push(name);
            }
            forms.push(json!({
                "type": "object",
                "additionalProperties": false,
                "required": [name],
                "properties": { *name: args },
                "description": describe("transform", name),
            }));
        }
    }
    forms.insert(
        0,
        json!({"type": "string", "enum": bare, "description": "A transform without arguments."}),
    );
    json!({
        "description": "A transform: a name like `trim`, or a one-key map like `truncate: 100`.",
        "oneOf": forms,
    })
}

/// What each key means, in the words of docs/mappings.md.
fn describe(section: &str, key: &str) -> &'static str {
    match (section, key) {
        ("file", "source") => "How requests to this endpoint are read and authenticated.",
        ("file", "rules") => "The rules, applied in file order to every record.",
        ("source", "format") => {
            "How bodies are read: salesforce-outbound (SOAP XML), leadsquared (JSON, form or text) or json."
        }
        ("source", "auth") => {
            "Required. `none`, or the checks every request must pass; secrets are named by environment variable."
        }
        ("source", "records") => {
            "json/leadsquared: a JSONPath selecting the records in a body (default: the body, or each element of an array)."
        }
        ("source", "dedupe_key") => {
            "A template (or path) naming one delivery; a record whose key was already stored is a duplicate."
        }
        ("source", "version") => {
            "Stale-update fence: a record older than one already accepted for the same key produces nothing."
        }
        ("source", "import") => {
            "How rows of an exported file become records (`webengage-bridge import`): column types and renames."
        }
        ("import", "columns") => {
            "CSV columns holding numbers, booleans or dates (text otherwise): `Score: number`."
        }
        ("import", "renames") => {
            "Exported column names to the field names webhooks use: `\"Lead Source\": LeadSource`."
        }
        ("version", "key") => "The CRM record this record is about.",
        ("version", "at") => "When the CRM record was modified (read like the datetime transform).",
        ("auth", "bearer_env") => {
            "Authorization: Bearer <token>; the token is read from this environment variable."
        }
        ("auth", "header") => "A header that must carry a secret.",
        ("auth", "basic") => "HTTP basic authentication.",
        ("auth", "hmac_sha256") => "An HMAC-SHA256 signature of the raw body in a header.",
        ("auth", "query") => {
            "A secret in the URL's query string (for senders that cannot add headers)."
        }
        ("auth", "organization_ids") => {
            "salesforce-outbound: the OrganizationId must be one of these (15 or 18 characters)."
        }
        ("header" | "query", "name") => "The header / query parameter name.",
        ("header" | "query", "value_env") => "The environment variable holding the expected value.",
        ("basic", "username_env") => "The environment variable holding the user name.",
        ("basic", "password_env") => "The environment variable holding the password.",
        ("hmac_sha256", "header") => "The header carrying the signature.",
        ("hmac_sha256", "secret_env") => "The environment variable holding the shared secret.",
        ("hmac_sha256", "encoding") => "How the signature is written: hex (default) or base64.",
        ("hmac_sha256", "prefix") => "Text before the signature in the header, e.g. `sha256=`.",
        ("rule", "name") => "Unique within the file; recorded on every delivery.",
        ("rule", "when") => "The condition under which the rule applies (default: always).",
        ("rule", "stop") => "true: later rules are skipped for a record this rule applied to.",
        ("rule", "user") => "One WebEngage user upsert.",
        ("rule", "event") => "One WebEngage event.",
        ("rule", "events") => "Several WebEngage events.",
        ("rule", "transaction") => "A transactional campaign trigger.",
        ("condition", "path") => "The JSONPath whose value is tested.",
        ("condition", "equals") => {
            "Holds when the value equals this (CRM text \"true\" equals YAML true)."
        }
        ("condition", "not_equals") => "Holds when the value differs from this.",
        ("condition", "in") => "Holds when the value is one of these.",
        ("condition", "exists") => "true: the value is neither absent, null nor empty text.",
        ("condition", "matches") => "Holds when the value's text matches this regular expression.",
        ("condition", "all") => "Holds when every condition holds.",
        ("condition", "any") => "Holds when at least one condition holds.",
        ("condition", "not") => "Holds when the condition does not.",
        ("user", "attributes") => {
            "Custom user attributes; array and object ones past 16 KB of JSON per user are dropped with a warning."
        }
        ("user", "userId") => {
            "The WebEngage user id (at most 100 characters); a user needs userId or anonymousId."
        }
        ("user", "anonymousId") => "An anonymous id, when there is no userId.",
        ("user", "gender") => "male, female or other (use `map:` to translate).",
        ("user", "phone") => {
            "E.164: `+` then 7 to 15 digits, nothing else (else dropped with a warning); use `transform: [{ phone: { default_region: IN } }]`."
        }
        ("user", "birthDate") => "Converted to WebEngage's date format automatically.",
        ("user", "emailOptIn" | "smsOptIn" | "rcsOptIn" | "whatsappOptIn") => {
            "true/false; use `transform: [boolean]` on CRM text."
        }
        ("user", "hashedEmail" | "hashedPhone") => {
            "A hashed identifier; use `transform: [sha256]`."
        }
        ("user", _) => "A WebEngage user field.",
        ("event", "userId") => "Default: the userId of the same rule's user.",
        ("event", "anonymousId") => "An anonymous id, when there is no userId.",
        ("event", "eventName") => "Required; under 50 characters, not starting `we_`.",
        ("event", "eventTime") => {
            "Default: when the webhook arrived; converted to WebEngage's format, keeping milliseconds when the CRM gives them."
        }
        ("event", "eventData") => "Custom event attributes.",
        ("transaction", "campaignId") => "Required: the transactional campaign id.",
        ("transaction", "userId") => "Default: the userId of the same rule's user.",
        ("transaction", "ttl") => "Seconds the message stays valid (WebEngage's default: 120).",
        ("transaction", "txnId") => "Your id for this transaction.",
        ("transaction", "overrideData") => "email, phone and context.token for personalisation.",
        ("transaction", "dedupe") => {
            "`{ ttl: N }`: WebEngage drops a repeat of this trigger within N seconds (5 to 1800)."
        }
        ("dedupe", "ttl") => "Seconds, 5 to 1800; checked when the mapping loads.",
        ("star", "from") => "The object whose fields are copied (default `$`).",
        ("star", "include") => {
            "Name patterns to copy (`*` any text, `?` one character); default all."
        }
        ("star", "exclude") => "Name patterns to skip.",
        ("star", "strip_prefix") => "Removed from the start of each copied name.",
        ("star", "strip_suffix") => "Removed from the end of each copied name, e.g. `__c`.",
        ("star", "prefix") => "Added before each copied name.",
        ("star", "rename") => "snake_case, camelCase or keep (default).",
        ("value", "path") => {
            "A JSONPath, or a list of them: the first with a value (neither null nor empty text)."
        }
        ("value", "template") => "Text with `{{ $.path }}` placeholders.",
        ("value", "const") => "A literal, even text starting with `$`.",
        ("value", "object") => "A JSON object of values.",
        ("value", "array") => "A JSON list of values.",
        ("value", "transform") => "Conversions applied in order; see the transform table.",
        ("value", "map") => {
            "Translates values: `{ Hot: 3, Warm: 2 }`; an unlisted value becomes empty."
        }
        ("value", "default") => "Used when there is no value.",
        ("value", "required") => "true: the rule fails for a record without a value.",
        ("phone", "default_region") => "The country of numbers written without `+`, e.g. IN.",
        ("datetime", "format") => {
            "A strftime format such as `%d/%m/%Y %H:%M`; default: ISO 8601 and the CRMs' forms."
        }
        ("datetime", "timezone") => "The IANA time zone of times without an offset; default UTC.",
        ("replace", "pattern") => "A regular expression.",
        ("replace", "with") => "The replacement text (default empty).",
        ("transform", "phone") => "To E.164.",
        ("transform", "datetime") => "To WebEngage's `yyyy-MM-ddTHH:mm:ss+0000`.",
        ("transform", "date") => "To `yyyy-MM-dd`.",
        ("transform", "split") => "Text to a list at this separator.",
        ("transform", "join") => "A list to text with this separator.",
        ("transform", "truncate") => "At most this many characters.",
        ("transform", "replace") => "Regular-expression replace.",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
