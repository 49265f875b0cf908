use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::mapping::yaml_tree;

fn compile_one(yaml: &str) -> (Option<Transform>, Vec<String>) {
    let node = yaml_tree::parse(yaml).expect("yaml");
    let mut ctx = Ctx::new(Path::new("t.yaml"));
    let t = compile(&mut ctx, &node);
    (t, ctx.errors.iter().map(|e| e.to_string()).collect())
}

fn run(yaml: &str, input: Value) -> Result<Value, String> {
    let (t, errors) = compile_one(yaml);
    assert!(errors.is_empty(), "{errors:?}");
    t.expect("compiled").apply_in(&input, false)
}

#[test]
fn text_transforms() {
    assert_eq!(run("trim", json!("  a b ")), Ok(json!("a b")));
    assert_eq!(run("lowercase", json!("AbC")), Ok(json!("abc")));
    assert_eq!(run("uppercase", json!(["a", "b"])), Ok(json!(["A", "B"])));
    assert_eq!(run("string", json!(10)), Ok(json!("10")));
    assert_eq!(run("truncate: 3", json!("abcdef")), Ok(json!("abc")));
    assert_eq!(
        run("split: \",\"", json!("a, b,,c")),
        Ok(json!(["a", "b", "c"]))
    );
    assert_eq!(run("join: \"; \"", json!(["a", "b"])), Ok(json!("a; b")));
    assert_eq!(
        run(
            "replace: { pattern: \"[^0-9]\", with: \"\" }",
            json!("a1b2")
        ),
        Ok(json!("12"))
    );
    assert_eq!(
        run("sha256", json!("abc")),
        Ok(json!(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ))
    );
}

#[test]
fn numbers_and_booleans() {
    assert_eq!(run("number", json!("10")), Ok(json!(10)));
    assert_eq!(run("number", json!(" 2.5 ")), Ok(json!(2.5)));
    assert_eq!(run("integer", json!("42.0")), Ok(json!(42)));
    assert!(run("integer", json!("4.2")).is_err());
    assert!(run("number", json!("ten")).is_err());
    for yes in ["true", "YES", "y", "1", "On"] {
        assert_eq!(run("boolean", json!(yes)), Ok(json!(true)), "{yes}");
    }
    for no in ["false", "No", "N", "0", "off"] {
        assert_eq!(run("boolean", json!(no)), Ok(json!(false)), "{no}");
    }
    assert_eq!(run("boolean", json!(1)), Ok(json!(true)));
    assert!(run("boolean", json!("maybe")).is_err());
    assert_eq!(run("not", json!("0")), Ok(json!(true)));
    assert_eq!(run("not", json!(true)), Ok(json!(false)));
}

#[test]
fn email_and_phone() {
    assert_eq!(
        run("email", json!("  Meera.Iyer@Example.COM ")),
        Ok(json!("meera.iyer@example.com"))
    );
    assert!(run("email", json!("not-an-email")).is_err());
    assert!(run("email", json!("a@b")).is_err());
    let phone = "phone: { default_region: IN }";
    assert_eq!(
        run(phone, json!("+91-9876543210")),
        Ok(json!("+919876543210"))
    );
    assert_eq!(
        run(phone, json!("+91 98765 43210")),
        Ok(json!("+919876543210"))
    );
    assert_eq!(
        run(phone, json!("098765 43210")),
        Ok(json!("+919876543210"))
    );
    assert_eq!(
        run(phone, json!("(020) 4567 8901")),
        Ok(json!("+912045678901"))
    );
    assert!(run(phone, json!("12")).is_err());
    assert!(run(phone, json!("call me")).is_err());
}

#[test]
fn datetimes_in_all_crm_forms() {
    let expected = json!("2024-01-15T10:30:00+0000");
    for input in [
        "2024-01-15T10:30:00.000+0000",
        "2024-01-15T10:30:00.000Z",
        "2024-01-15T10:30:00Z",
        "2024-01-15T16:00:00+05:30",
        "2024-01-15 10:30:00",
        "2024-01-15 10:30:00.000",
    ] {
        assert_eq!(
            run("datetime", json!(input)),
            Ok(expected.clone()),
            "{input}"
        );
    }
    assert_eq!(
        run("datetime", json!("1991-04-12")),
        Ok(json!("1991-04-12T00:00:00+0000"))
    );
    assert_eq!(
        run(
            "datetime: { timezone: Asia/Kolkata }",
            json!("2024-01-15 16:00:00")
        ),
        Ok(expected.clone())
    );
    assert_eq!(
        run(
            "datetime: { format: \"%d/%m/%Y %H:%M\", timezone: Asia/Kolkata }",
            json!("15/01/2024 16:00")
        ),
        Ok(expected)
    );
    assert_eq!(
        run("date", json!("2024-01-15T23:30:00Z")),
        Ok(json!("2024-01-15"))
    );
    assert!(run("datetime", json!("next tuesday")).is_err());
}

#[test]
fn bad_transforms_are_load_errors() {
    let (_, e) = compile_one("lowercse");
    assert_eq!(
        e,
        ["t.yaml:1:1: unknown transform `lowercse`; did you mean `lowercase`?"]
    );
    let (_, e) = compile_one("phone: { default_region: XX }");
    assert!(e[0].contains("not a two-letter country code"), "{e:?}");
    let (_, e) = compile_one("phone");
    assert!(e[0].contains("default_region"), "{e:?}");
    for zero_or_less in ["truncate: -1", "truncate: 0"] {
        let (t, e) = compile_one(zero_or_less);
        assert!(
            t.is_none() && e[0].contains("positive whole number"),
            "{e:?}"
        );
    }
    // The regex crate's message spans lines; a load error is one line.
    let (_, e) = compile_one("replace: { pattern: \"(\" }");
    assert_eq!(
        e,
        ["t.yaml:1:21: invalid regular expression: regex parse error: ( ^ error: unclosed group"]
    );
    let (t, e) = compile_one("trim: 1");
    assert!(t.is_some());
    assert_eq!(
        e,
        ["t.yaml:1:7: transform `trim` takes no arguments: write just `trim`"]
    );
    let (t, e) = compile_one("trim:");
    assert!(matches!(t, Some(Transform::Trim)) && e.is_empty(), "{e:?}");
    let (t, e) = compile_one("{ trim: , lowercase: }");
    assert!(t.is_none() && e[0].contains("one-key map"), "{e:?}");
    let (_, e) = compile_one("datetime: { timezone: Mars/Olympus }");
    assert!(e[0].contains("unknown time zone"), "{e:?}");
}

#[test]
fn email_refuses_near_misses() {
    for text in [
        "@example.com",
        "a@.example.com",
        "a@example.com.",
        "a@b@example.com",
        "a b@example.com",
    ] {
        assert_eq!(
            run("email", json!(text)),
            Err("not an e-mail address".to_owned()),
            "{text}"
        );
    }
}

#[test]
fn integers_stay_exact_and_floats_must_be_below_9e15() {
    // Parsed as an integer, not through a float that would round it.
    assert_eq!(
        run("integer", json!("-9007199254740993")),
        Ok(json!(-9007199254740993i64))
    );
    assert_eq!(
        run("integer", json!("8999999999999998.0")),
        Ok(json!(8999999999999998i64))
    );
    assert!(run("integer", json!("9000000000000000.0")).is_err());
}
