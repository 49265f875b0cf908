//! Coalescing (`BRIDGE_COALESCE_USERS`): a user's queued user updates go out as one user
//! record. WebEngage merges user attributes, so only the final state matters: later
//! values win per field, and `attributes` are merged per key. Events and transactions
//! are never merged (the claim only gathers the user rows right behind a user's head,
//! up to the first row of another kind).

use serde_json::{Map, Value};

/// The most user rows merged into one record (the head included).
pub const MAX_MERGED: usize = 50;

/// The user record that applying `bodies` in order amounts to.
pub fn merge_users<'a>(bodies: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged = Map::new();
    for body in bodies {
        let Some(fields) = body.as_object() else {
            continue;
        };
        for (key, value) in fields {
            match (merged.get_mut(key), value) {
                (Some(Value::Object(old)), Value::Object(new)) if key == "attributes" => {
                    for (name, v) in new {
                        old.insert(name.clone(), v.clone());
                    }
                }
                _ => {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn later_values_win_per_field_and_attributes_merge_per_key() {
        let created = json!({"userId": "L1", "firstName": "Asha", "email": "a@x.io",
                             "attributes": {"stage": "new", "score": 1}});
        let renamed = json!({"userId": "L1", "firstName": "Asha K", "attributes": {"score": 5}});
        let moved =
            json!({"userId": "L1", "city": "Pune", "attributes": {"stage": "won", "owner": "B"}});
        let cleared = json!({"userId": "L1", "email": null});
        let merged = merge_users([&created, &renamed, &moved, &cleared]);
        assert_eq!(
            merged,
            json!({"userId": "L1", "firstName": "Asha K", "email": null,
                   "attributes": {"stage": "won", "score": 5, "owner": "B"}, "city": "Pune"})
        );
    }

    #[test]
    fn only_attributes_merge_per_key_other_objects_are_replaced_whole() {
        // Any other object field is a value of its own: its later state replaces the
        // earlier one, as WebEngage would store it.
        let first = json!({"userId": "u", "address": {"city": "Pune", "zip": "411001"}});
        let moved = json!({"userId": "u", "address": {"city": "Delhi"}});
        assert_eq!(
            merge_users([&first, &moved]),
            json!({"userId": "u", "address": {"city": "Delhi"}})
        );
    }

    #[test]
    fn one_body_is_itself_and_attributes_replaced_by_a_non_object_take_the_new_value() {
        let only = json!({"userId": "u", "attributes": {"a": 1}});
        assert_eq!(merge_users([&only]), only);
        let odd = json!({"userId": "u", "attributes": "x"});
        assert_eq!(merge_users([&only, &odd]), odd);
        let back = json!({"userId": "u", "attributes": {"b": 2}});
        assert_eq!(
            merge_users([&odd, &back]),
            json!({"userId": "u", "attributes": {"b": 2}})
        );
    }
}
