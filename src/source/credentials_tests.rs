//! Tests of webhook authentication: every option right and wrong.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::*;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn request(headers: &[(&str, &str)], query: &str, body: &[u8]) -> InboundRequest {
    InboundRequest {
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect(),
        query: query.to_owned(),
        body: body.to_vec(),
    }
}

/// Every check but the organization id, in the order a webhook meets them.
fn verify_request(spec: &AuthSpec, req: &InboundRequest) -> Result<(), AuthError> {
    verify_head(spec, req)?;
    verify_signature(spec, req)
}

fn sign(key: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_spec(encoding: HmacEncoding, prefix: Option<&str>) -> AuthSpec {
    AuthSpec {
        hmac_sha256: Some(HmacAuth {
            header: "X-Signature".into(),
            secret: secret("s3cret-key"),
            encoding,
            prefix: prefix.map(str::to_owned),
        }),
        ..AuthSpec::default()
    }
}

#[test]
fn open_spec_passes_everything() {
    let spec = AuthSpec::default();
    assert!(is_open(&spec));
    assert_eq!(verify_request(&spec, &request(&[], "", b"")), Ok(()));
    assert_eq!(verify_organization(&spec, "anything"), Ok(()));
    let org_only = AuthSpec {
        organization_ids: vec!["00D5j00000KqRtB".into()],
        ..AuthSpec::default()
    };
    assert!(!is_open(&org_only));
    // Org ids are checked on the body, not here.
    assert_eq!(verify_request(&org_only, &request(&[], "", b"")), Ok(()));
}

#[test]
fn bearer() {
    let spec = AuthSpec {
        bearer: Some(secret("tok-123")),
        ..AuthSpec::default()
    };
    assert!(!is_open(&spec));
    assert_eq!(
        verify_request(
            &spec,
            &request(&[("Authorization", "Bearer tok-123")], "", b"")
        ),
        Ok(())
    );
    assert_eq!(
        verify_request(
            &spec,
            &request(&[("authorization", "bearer  tok-123 ")], "", b"")
        ),
        Ok(())
    );
    for bad in [
        "Bearer tok-12",
        "Bearer tok-1234",
        "Basic tok-123",
        "tok-123",
        "Bearer",
        "",
    ] {
        let req = request(&[("Authorization", bad)], "", b"");
        assert_eq!(
            verify_request(&spec, &req),
            Err(AuthError::Bearer),
            "{bad:?}"
        );
    }
    assert_eq!(
        verify_request(&spec, &request(&[], "", b"")),
        Err(AuthError::Bearer)
    );
}

#[test]
fn header() {
    let spec = AuthSpec {
        header: Some(HeaderAuth {
            name: "X-Api-Key".into(),
            value: secret("k-987"),
        }),
        ..AuthSpec::default()
    };
    assert_eq!(
        verify_request(&spec, &request(&[("x-api-key", "k-987")], "", b"")),
        Ok(())
    );
    let err = Err(AuthError::Header("X-Api-Key".into()));
    assert_eq!(
        verify_request(&spec, &request(&[("x-api-key", "k-98")], "", b"")),
        err
    );
    assert_eq!(
        verify_request(&spec, &request(&[("x-other", "k-987")], "", b"")),
        err
    );
}

#[test]
fn basic() {
    let spec = AuthSpec {
        basic: Some(BasicAuth {
            username: secret("crm"),
            password: secret("pa:ss"),
        }),
        ..AuthSpec::default()
    };
    let good = format!("Basic {}", STANDARD.encode("crm:pa:ss"));
    assert_eq!(
        verify_request(&spec, &request(&[("Authorization", &good)], "", b"")),
        Ok(())
    );
    let unpadded = format!("basic {}", URL_SAFE_NO_PAD.encode("crm:pa:ss"));
    assert_eq!(
        verify_request(&spec, &request(&[("Authorization", &unpadded)], "", b"")),
        Ok(())
    );
    for bad in [
        format!("Basic {}", STANDARD.encode("crm:pa:s")),
        format!("Basic {}", STANDARD.encode("CRM:pa:ss")),
        format!("Bearer {}", STANDARD.encode("crm:pa:ss")),
        "Basic !!!not base64".to_owned(),
        "Basic".to_owned(),
    ] {
        let req = request(&[("Authorization", &bad)], "", b"");
        assert_eq!(
            verify_request(&spec, &req),
            Err(AuthError::Basic),
            "{bad:?}"
        );
    }
}

#[test]
fn hmac_hex_base64_and_prefix() {
    let body = br#"{"ProspectID":"p1"}"#;
    let sig = sign("s3cret-key", body);
    let err = Err(AuthError::Hmac("X-Signature".into()));

    let spec = hmac_spec(HmacEncoding::Hex, None);
    let ok = |v: &str| verify_request(&spec, &request(&[("X-Signature", v)], "", body));
    assert_eq!(ok(&hex::encode(&sig)), Ok(()));
    assert_eq!(ok(&hex::encode_upper(&sig)), Ok(()));
    assert_eq!(ok(&STANDARD.encode(&sig)), err);
    assert_eq!(ok(&hex::encode(&sig[..31])), err);
    assert_eq!(ok(&hex::encode(sign("other-key", body))), err);
    assert_eq!(ok(&format!("sha256={}", hex::encode(&sig))), err);
    // Same signature, different body.
    let tampered = request(&[("X-Signature", &hex::encode(&sig))], "", b"{}");
    assert_eq!(verify_request(&spec, &tampered), err);
    assert_eq!(verify_request(&spec, &request(&[], "", body)), err);

    let spec = hmac_spec(HmacEncoding::Base64, None);
    let ok = |v: &str| verify_request(&spec, &request(&[("X-Signature", v)], "", body));
    assert_eq!(ok(&STANDARD.encode(&sig)), Ok(()));
    assert_eq!(ok(&URL_SAFE_NO_PAD.encode(&sig)), Ok(()));
    assert_eq!(ok(&hex::encode(&sig)), err);

    let spec = hmac_spec(HmacEncoding::Hex, Some("sha256="));
    let ok = |v: &str| verify_request(&spec, &request(&[("X-Signature", v)], "", body));
    assert_eq!(ok(&format!("sha256={}", hex::encode(&sig))), Ok(()));
    assert_eq!(ok(&format!("SHA256={}", hex::encode(&sig))), Ok(()));
    assert_eq!(ok(&hex::encode(&sig)), err);
    assert_eq!(ok("sha256="), err);
    assert_eq!(ok("é"), err);
}

#[test]
fn query() {
    let spec = AuthSpec {
        query: Some(QueryAuth {
            name: "key".into(),
            value: secret("a b&c"),
        }),
        ..AuthSpec::default()
    };
    let err = Err(AuthError::Query("key".into()));
    assert_eq!(
        verify_request(&spec, &request(&[], "x=1&key=a+b%26c", b"")),
        Ok(())
    );
    assert_eq!(
        verify_request(&spec, &request(&[], "key=a+b%26c&key=other", b"")),
        Ok(())
    );
    assert_eq!(
        verify_request(&spec, &request(&[], "key=other&key=a+b%26c", b"")),
        err
    );
    assert_eq!(
        verify_request(&spec, &request(&[], "Key=a+b%26c", b"")),
        err
    );
    assert_eq!(verify_request(&spec, &request(&[], "", b"")), err);
}

#[test]
fn every_configured_option_must_pass() {
    let spec = AuthSpec {
        bearer: Some(secret("tok")),
        query: Some(QueryAuth {
            name: "k".into(),
            value: secret("v"),
        }),
        ..AuthSpec::default()
    };
    let both = request(&[("Authorization", "Bearer tok")], "k=v", b"");
    assert_eq!(verify_request(&spec, &both), Ok(()));
    let no_query = request(&[("Authorization", "Bearer tok")], "", b"");
    assert_eq!(
        verify_request(&spec, &no_query),
        Err(AuthError::Query("k".into()))
    );
    let no_bearer = request(&[], "k=v", b"");
    assert_eq!(verify_request(&spec, &no_bearer), Err(AuthError::Bearer));
}

#[test]
fn organization_ids_match_on_15_characters() {
    let spec = AuthSpec {
        organization_ids: vec!["00D000000000001AAA".into(), "00D5j00000KqRtB".into()],
        ..AuthSpec::default()
    };
    assert_eq!(verify_organization(&spec, "00D5j00000KqRtB"), Ok(()));
    assert_eq!(verify_organization(&spec, "00D5j00000KqRtBEAV"), Ok(()));
    assert_eq!(verify_organization(&spec, "00D000000000001"), Ok(()));
    assert_eq!(verify_organization(&spec, "00D000000000001ZZZ"), Ok(()));
    for bad in [
        "00D5j00000KqRtb",
        "00d5j00000KqRtBEAV",
        "00D5j00000KqRt",
        "",
        "00D5j00000KqRtX",
        "é",
    ] {
        assert_eq!(
            verify_organization(&spec, bad),
            Err(AuthError::Organization),
            "{bad:?}"
        );
    }
}

#[test]
fn an_org_listed_in_both_its_forms_still_passes() {
    // Admins paste the 15- and the 18-character id of one org; a received id then
    // matches two entries, which must not cancel out.
    let spec = AuthSpec {
        organization_ids: vec!["00D5j00000KqRtB".into(), "00D5j00000KqRtBEAV".into()],
        ..AuthSpec::default()
    };
    assert_eq!(verify_organization(&spec, "00D5j00000KqRtBEAV"), Ok(()));
    assert_eq!(verify_organization(&spec, "00D5j00000KqRtB"), Ok(()));
}

#[test]
fn debug_output_redacts_secrets() {
    let spec = AuthSpec {
        bearer: Some(secret("SECRET-bearer")),
        header: Some(HeaderAuth {
            name: "X-Key".into(),
            value: secret("SECRET-header"),
        }),
        basic: Some(BasicAuth {
            username: secret("SECRET-user"),
            password: secret("SECRET-pass"),
        }),
        hmac_sha256: Some(HmacAuth {
            header: "X-Sig".into(),
            secret: secret("SECRET-hmac"),
            encoding: HmacEncoding::Hex,
            prefix: None,
        }),
        query: Some(QueryAuth {
            name: "k".into(),
            value: secret("SECRET-query"),
        }),
        organization_ids: vec![],
    };
    let debug = format!("{spec:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("X-Key"));
    // Errors name what failed, never a value.
    let err = verify_request(
        &spec,
        &request(&[("Authorization", "Bearer SECRET-guess")], "", b""),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("SECRET"));
}
