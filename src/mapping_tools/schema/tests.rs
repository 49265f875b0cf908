use super::*;

#[test]
fn every_key_the_loader_knows_has_a_description() {
    let sections: &[(&str, &[&str])] = &[
        ("file", compile::TOP_KEYS),
        ("source", compile::SOURCE_KEYS),
        ("version", compile::VERSION_KEYS),
        ("import", import::KEYS),
        ("rule", compile::RULE_KEYS),
        ("event", compile::EVENT_KEYS),
        ("transaction", compile::TXN_KEYS),
        ("dedupe", compile::DEDUPE_KEYS),
        ("user", &user_keys()),
        ("auth", auth::KEYS),
        ("header", auth::HEADER_KEYS),
        ("basic", auth::BASIC_KEYS),
        ("hmac_sha256", auth::HMAC_KEYS),
        ("query", auth::QUERY_KEYS),
        ("condition", condition::KEYS),
        ("star", star::KEYS),
        ("value", value::ALL_KEYS),
        ("phone", transform::PHONE_ARGS),
        ("datetime", transform::DATETIME_ARGS),
        ("replace", transform::REPLACE_ARGS),
    ];
    for (section, keys) in sections {
        for key in *keys {
            assert!(!describe(section, key).is_empty(), "{section}.{key}");
        }
    }
}

#[test]
fn every_transform_is_in_the_schema() {
    for name in transform::NAMES {
        let bare = transform::NO_ARGS.contains(name);
        let with_args = transform_args(name).is_some();
        assert!(bare != with_args, "{name}: bare xor with arguments");
    }
    let text = mapping_file_schema().to_string();
    for name in transform::NAMES {
        assert!(text.contains(&format!("\"{name}\"")), "{name}");
    }
}

#[test]
fn the_schema_lists_the_loader_vocabulary() {
    let s = mapping_file_schema();
    let formats = &s["definitions"]["source"]["properties"]["format"]["enum"];
    assert_eq!(formats, &json!(SourceFormat::ALL));
    let user = &s["definitions"]["user"]["properties"];
    for f in rules::USER_FIELDS {
        assert!(user.get(*f).is_some(), "{f}");
    }
    assert_eq!(
        s["definitions"]["user"]["additionalProperties"],
        json!(false)
    );
    let dedupe = &s["definitions"]["transaction"]["properties"]["dedupe"];
    assert_eq!(dedupe["properties"]["ttl"]["minimum"], 5);
    assert_eq!(dedupe["properties"]["ttl"]["maximum"], 1800);
    assert_eq!(dedupe["required"], json!(["ttl"]));
    assert_eq!(dedupe["additionalProperties"], json!(false));
}
