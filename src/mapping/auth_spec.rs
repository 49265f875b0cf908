//! `source.auth`: which credentials a webhook must carry, resolved from the environment
//! at load time so a missing secret stops the load instead of failing every request.

use secrecy::SecretString;

use super::check::Ctx;
use super::yaml_tree::{Entries, Node, Pos, SNode, get};
use crate::source::SourceFormat;
use crate::source::credentials::{
    AuthSpec, BasicAuth, HeaderAuth, HmacAuth, HmacEncoding, QueryAuth,
};

pub const HEADER_KEYS: &[&str] = &["name", "value_env"];
pub const BASIC_KEYS: &[&str] = &["username_env", "password_env"];
pub const HMAC_KEYS: &[&str] = &["header", "secret_env", "encoding", "prefix"];
pub const HMAC_ENCODINGS: &[&str] = &["hex", "base64"];
pub const QUERY_KEYS: &[&str] = &["name", "value_env"];
pub const KEYS: &[&str] = &[
    "bearer_env",
    "header",
    "basic",
    "hmac_sha256",
    "query",
    "organization_ids",
];

pub fn compile(ctx: &mut Ctx, node: &SNode, format: SourceFormat) -> Option<AuthSpec> {
    if node.value.as_str() == Some("none") {
        return Some(AuthSpec::default());
    }
    let Node::Map(entries) = &node.value else {
        ctx.err(
            Pos::of(node),
            "`auth` is `none` or a map of checks, e.g. `auth: { bearer_env: MY_WEBHOOK_TOKEN }`",
        );
        return None;
    };
    ctx.check_keys(entries, KEYS, "auth");
    if entries.is_empty() {
        ctx.err(
            Pos::of(node),
            "`auth` lists no checks; write `auth: none` to accept unauthenticated requests",
        );
    }
    let mut spec = AuthSpec::default();
    let before = ctx.errors.len();
    if let Some(n) = get(entries, "bearer_env") {
        spec.bearer = secret(ctx, n, "bearer_env");
    }
    if let Some(n) = get(entries, "header") {
        spec.header = sub(ctx, n, "header", HEADER_KEYS).and_then(|e| {
            let name = text(ctx, e, n, "name", "header")?;
            let value = secret(ctx, get(e, "value_env")?, "value_env")?;
            Some(HeaderAuth { name, value })
        });
    }
    if let Some(n) = get(entries, "basic") {
        spec.basic = sub(ctx, n, "basic", BASIC_KEYS).and_then(|e| {
            let username = required_secret(ctx, e, n, "username_env", "basic");
            let password = required_secret(ctx, e, n, "password_env", "basic");
            Some(BasicAuth {
                username: username?,
                password: password?,
            })
        });
    }
    if let Some(n) = get(entries, "hmac_sha256") {
        spec.hmac_sha256 = hmac(ctx, n);
    }
    if let Some(n) = get(entries, "query") {
        spec.query = sub(ctx, n, "query", QUERY_KEYS).and_then(|e| {
            let name = text(ctx, e, n, "name", "query");
            let value = required_secret(ctx, e, n, "value_env", "query");
            Some(QueryAuth {
                name: name?,
                value: value?,
            })
        });
    }
    if let Some(n) = get(entries, "organization_ids") {
        spec.organization_ids = organization_ids(ctx, n, format);
    }
    (ctx.errors.len() == before).then_some(spec)
}

fn sub<'n>(ctx: &mut Ctx, node: &'n SNode, what: &str, keys: &[&str]) -> Option<&'n Entries> {
    let entries = ctx.map(node, &format!("auth.{what}"))?;
    ctx.check_keys(entries, keys, &format!("auth.{what}"));
    Some(entries)
}

fn text(
    ctx: &mut Ctx,
    entries: &Entries,
    parent: &SNode,
    key: &str,
    section: &str,
) -> Option<String> {
    let n = ctx.required(entries, Pos::of(parent), key, &format!("auth.{section}"))?;
    ctx.string(n, key).map(str::to_owned)
}

fn required_secret(
    ctx: &mut Ctx,
    entries: &Entries,
    parent: &SNode,
    key: &str,
    section: &str,
) -> Option<SecretString> {
    let n = ctx.required(entries, Pos::of(parent), key, &format!("auth.{section}"))?;
    secret(ctx, n, key)
}

/// Reads the environment variable named by `node`. Errors name the variable, never a value.
fn secret(ctx: &mut Ctx, node: &SNode, key: &str) -> Option<SecretString> {
    let var = ctx.string(node, key)?;
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
        _ => {
            ctx.err(
                Pos::of(node),
                format!("environment variable `{var}` (named by `{key}`) is not set or empty; set it before starting the bridge — secrets never go in the file"),
            );
            None
        }
    }
}

fn hmac(ctx: &mut Ctx, node: &SNode) -> Option<HmacAuth> {
    let e = sub(ctx, node, "hmac_sha256", HMAC_KEYS)?;
    let header = text(ctx, e, node, "header", "hmac_sha256");
    let secret = required_secret(ctx, e, node, "secret_env", "hmac_sha256");
    let encoding = match get(e, "encoding").map(|n| (n.value.as_str(), Pos::of(n))) {
        None | Some((Some("hex"), _)) => Some(HmacEncoding::Hex),
        Some((Some("base64"), _)) => Some(HmacEncoding::Base64),
        Some((_, p)) => {
            ctx.err(p, "`encoding` is `hex` or `base64`");
            None
        }
    };
    let prefix = get(e, "prefix")
        .and_then(|p| ctx.string(p, "prefix"))
        .map(str::to_owned);
    Some(HmacAuth {
        header: header?,
        secret: secret?,
        encoding: encoding?,
        prefix,
    })
}

fn organization_ids(ctx: &mut Ctx, node: &SNode, format: SourceFormat) -> Vec<String> {
    if format != SourceFormat::SalesforceOutbound {
        ctx.err(
            Pos::of(node),
            "`organization_ids` only applies to `format: salesforce-outbound`",
        );
        return Vec::new();
    }
    let Node::Seq(items) = &node.value else {
        ctx.err(
            Pos::of(node),
            "`organization_ids` is a list, e.g. `[00D5j00000KqRtB]`",
        );
        return Vec::new();
    };
    let mut ids = Vec::new();
    for item in items {
        match &item.value {
            Node::String(id) if id.len() == 15 || id.len() == 18 => ids.push(id.clone()),
            _ => ctx.err(
                Pos::of(item),
                "an organization id has 15 or 18 characters, e.g. `00D5j00000KqRtB`",
            ),
        }
    }
    ids
}
