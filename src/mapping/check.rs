//! Collecting load errors: every problem of every file, each positioned and saying
//! what to write instead, so an admin fixes a file in one pass rather than one error at a time.

use std::path::Path;

use super::LoadError;
use super::yaml_tree::{Entries, Node, Pos, SNode};

/// The errors found so far in one file.
pub struct Ctx<'a> {
    pub file: &'a Path,
    pub errors: Vec<LoadError>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Path) -> Self {
        Ctx {
            file,
            errors: Vec::new(),
        }
    }

    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    /// Reports every key of `entries` not in `allowed`, naming the nearest valid key.
    pub fn check_keys(&mut self, entries: &Entries, allowed: &[&str], section: &str) {
        for (key, _) in entries {
            if !allowed.contains(&key.value.as_str()) {
                let message = unknown_key_message(&key.value, allowed, section);
                self.err(Pos::of(key), message);
            }
        }
    }

    /// The node as a map, or an error saying a map was expected.
    pub fn map<'n>(&mut self, node: &'n SNode, what: &str) -> Option<&'n Entries> {
        match &node.value {
            Node::Map(m) => Some(m),
            other => {
                self.err(
                    Pos::of(node),
                    format!(
                        "{what} must be a map of `key: value` lines, not {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// The node as a string, or an error naming the key.
    pub fn string<'n>(&mut self, node: &'n SNode, what: &str) -> Option<&'n str> {
        match &node.value {
            Node::String(s) => Some(s),
            other => {
                self.err(
                    Pos::of(node),
                    format!("{what} must be a text value, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// `key` is required in `entries`.
    pub fn required<'n>(
        &mut self,
        entries: &'n Entries,
        at: Pos,
        key: &str,
        section: &str,
    ) -> Option<&'n SNode> {
        let found = super::yaml_tree::get(entries, key);
        if found.is_none() {
            self.err(at, format!("{section} needs `{key}`"));
        }
        found
    }
}

pub fn unknown_key_message(key: &str, allowed: &[&str], section: &str) -> String {
    match nearest(key, allowed) {
        Some(best) => format!("unknown key `{key}` in {section}; did you mean `{best}`?"),
        None => format!(
            "unknown key `{key}` in {section}; valid keys are: {}",
            allowed.join(", ")
        ),
    }
}

/// The candidate closest to `word` by edit distance (case-insensitive), when close enough
/// to be a plausible typo.
pub fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(
            nearest("eventNmae", &["userId", "eventName", "eventTime"]),
            Some("eventName")
        );
        assert_eq!(
            nearest("firstname", &["firstName", "lastName"]),
            Some("firstName")
        );
        assert_eq!(nearest("zzzzzz", &["userId", "eventName"]), None);
    }

    #[test]
    fn message_lists_valid_keys_when_nothing_is_close() {
        let m = unknown_key_message("banana", &["user", "event"], "rule");
        assert_eq!(
            m,
            "unknown key `banana` in rule; valid keys are: user, event"
        );
    }
}
