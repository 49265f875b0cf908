//! Templates: `{{ path }}` placeholders between literal text, compiled once.

use super::check::Ctx;
use super::path::CompiledPath;
use super::transform::text_of;
use super::yaml_tree::Pos;
use serde_json::Value;

/// `{{ path }}` placeholders between literal text.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Path(CompiledPath),
}

impl Template {
    /// The template as written, paths normalised (for `--explain`).
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Path(p) => format!("{{{{ {} }}}}", p.text()),
            })
            .collect()
    }

    /// The rendered text; `None` when no placeholder [has a value](super::path::has_value) (a
    /// blank placeholder renders as nothing, as a null one does).
    pub fn render(&self, record: &Value) -> Option<String> {
        let mut out = String::new();
        let mut any = false;
        let mut has_paths = false;
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Path(p) => {
                    has_paths = true;
                    if let Some(text) = p.value(record).and_then(text_of) {
                        any = true;
                        out.push_str(&text);
                    }
                }
            }
        }
        (any || !has_paths).then_some(out)
    }

    pub fn compile(ctx: &mut Ctx, pos: Pos, text: &str) -> Option<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut ok = true;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let Some(len) = rest[start..].find("}}") else {
                ctx.err(
                    pos,
                    format!("template `{text}` opens `{{{{` without closing `}}}}`"),
                );
                return None;
            };
            match CompiledPath::compile(rest[start + 2..start + len].trim()) {
                Ok(p) => parts.push(Part::Path(p)),
                Err(e) => {
                    ctx.err(pos, format!("in template: {e}"));
                    ok = false;
                }
            }
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        ok.then_some(Template(parts))
    }
}
