//! The phone transform against the `phonenumber` crate it replaces on the hot path:
//! same E.164 output, same refusals, same reason for each refusal.

use phonenumber::country::Id;
use proptest::prelude::*;

use super::*;

/// What the transform did before: the crate's parser, validator and E.164 output.
fn oracle(region: Id, text: &str) -> Result<String, &'static str> {
    let number = phonenumber::parse(Some(region), text.trim()).map_err(|_| NOT_A_NUMBER)?;
    if !phonenumber::is_valid(&number) {
        return Err(NOT_VALID);
    }
    Ok(format!("+{}{}", number.country().code(), number.national()))
}

fn region(id: &str) -> Id {
    id.parse().expect("region id")
}

/// Default regions to test with: India, regions whose national prefix goes through the
/// crate (BR, AR, MX), codes shared by several regions (US/CA, RU/KZ, GB/JE), Italy's
/// leading zeros.
const REGIONS: &[&str] = &[
    "IN", "US", "CA", "GB", "JE", "DE", "IT", "FR", "NZ", "AU", "RU", "KZ", "BR", "AR", "MX", "CN",
    "SG", "AE", "JP", "ZA",
];

#[test]
fn every_country_code_compiles() {
    let codes: Vec<u16> = (0..CODES as u16).filter(|c| code_exists(*c)).collect();
    assert!(codes.len() > 200 && codes.contains(&91) && codes.contains(&800));
    for code in codes {
        assert!(rules_for(code).is_some(), "{code}");
    }
}

/// `Home::default_country`, `Home::finish` and `Kinds::known` leave out the crate's
/// checks of the general description's possible lengths (`validator::length` with
/// `Type::Unknown`, and `Descriptor::is_match`'s length test) because this metadata lists
/// none: every check gives one answer. Every region, the non-geographic entities included.
#[test]
fn general_descriptions_list_no_lengths() {
    let metas: Vec<&Metadata> = (0..CODES as u16)
        .filter_map(|code| DATABASE.by_code(&code))
        .flatten()
        .collect();
    assert!(metas.len() > 240, "{} regions", metas.len());
    for meta in metas {
        let general = meta.descriptors().general();
        assert!(
            general.possible_length().is_empty() && general.possible_local_length().is_empty(),
            "{} (+{}): the general description lists possible lengths {:?}, local {:?}, and \
             the crate's parser now decides by them. Restore `Home::length` (asked in \
             `Home::default_country` and `Home::finish`), `Home::general_match` (in \
             `default_country`) and the general description's length check in `Kinds::known` \
             (`git log -S general_lengths -- src/mapping/phone.rs`), or the fast route stops \
             giving the crate's answers",
            meta.id(),
            meta.country_code(),
            general.possible_length(),
            general.possible_local_length(),
        );
    }
}

/// Every region's example numbers, written the ways CRMs write them, read with the
/// number's own region and with India as the default.
#[test]
fn example_numbers_agree_with_the_crate() {
    let (mut checked, mut fast) = (0, 0);
    let india = Phone::new(region("IN"));
    for meta in DATABASE.iter() {
        let own = meta.id().parse::<Id>().ok().map(Phone::new);
        let d = meta.descriptors();
        let examples = [d.fixed_line(), d.mobile(), d.toll_free(), d.voip()]
            .into_iter()
            .flatten()
            .filter_map(|k| k.example());
        for ex in examples {
            let cc = meta.country_code();
            let (head, tail) = ex.split_at(ex.len() / 2);
            let wrong = format!("{ex}1");
            let texts = [
                format!("+{cc}{ex}"),
                format!("+{cc}-{ex}"),
                format!("+{cc} {head} {tail}"),
                format!("+{cc}-{head}-{tail}"),
                format!("00{cc} {ex}"),
                format!("{cc}{ex}"),
                format!("0{ex}"),
                format!("{head}-{tail}"),
                ex.to_owned(),
                format!("+{cc} {wrong}"),
            ];
            for phone in own.iter().chain([&india]) {
                for text in &texts {
                    assert_eq!(
                        phone.to_e164(text),
                        oracle(phone.region, text),
                        "{text:?} in {:?}",
                        phone.region
                    );
                    checked += 1;
                    fast += usize::from(
                        phone
                            .home
                            .as_ref()
                            .is_some_and(|h| h.parse(text, &mut [0; 40]).is_some()),
                    );
                }
            }
        }
    }
    // Most of them must have taken the fast route, or this compares the crate with itself.
    assert!(fast * 10 > checked * 8, "{fast} of {checked}");
}

#[test]
fn crm_shapes() {
    let india = Phone::new(region("IN"));
    let cases = [
        ("+91-9123456780", Ok("+919123456780")),
        ("+91 98765 43210", Ok("+919876543210")),
        (" +919876543210 ", Ok("+919876543210")),
        ("9876543210", Ok("+919876543210")),
        ("098765 43210", Ok("+919876543210")),
        ("0091 98765 43210", Ok("+919876543210")),
        ("919876543210", Ok("+919876543210")),
        ("(020) 4567 8901", Ok("+912045678901")),
        ("+44 20 7946 0958", Ok("+442079460958")),
        // RFC 3966 reads `+919-…` as country code 919, which does not exist.
        ("+919-876543210", Err(NOT_A_NUMBER)),
        ("+91 55555 5555", Err(NOT_VALID)),
        ("12", Err(NOT_VALID)),
        ("+91-0000", Err(NOT_A_NUMBER)),
        ("call me", Err(NOT_A_NUMBER)),
        // Near the edges of the shapes parsed here: each must still end as the crate's.
        ("98765x43210", Err(NOT_VALID)),
        ("9876543210 ext 5", Ok("+919876543210")),
        ("+-919876543210", Ok("+919876543210")),
        ("+919-876 543210", Ok("+919876543210")),
        ("+0919876543210", Err(NOT_A_NUMBER)),
        ("1-2", Err(NOT_A_NUMBER)),
        ("+91-12", Err(NOT_A_NUMBER)),
        // A national number must be below 2^56 (72057594037927936).
        ("+91 72057594037927935", Err(NOT_VALID)),
        ("+91 72057594037927936", Err(NOT_A_NUMBER)),
    ];
    for (text, want) in cases {
        assert_eq!(india.to_e164(text), oracle(Id::IN, text), "{text}");
        assert_eq!(
            india.to_e164(text).as_deref().map_err(|e| *e),
            want,
            "{text}"
        );
    }
}

/// The shapes CRMs send are parsed here, not by the crate: that is the point of the module.
#[test]
fn crm_shapes_take_the_fast_route() {
    let india = Phone::new(region("IN"));
    let home = india.home.as_ref().expect("India parses here");
    for text in [
        "+91-9123456780",
        "+91 98765 43210",
        "+919876543210",
        "9876543210",
        "098765 43210",
        "0091 98765 43210",
    ] {
        assert!(home.parse(text, &mut [0; 40]).is_some(), "{text}");
    }
}

fn shaped() -> impl Strategy<Value = String> {
    let digits = prop_oneof![
        Just(String::new()),
        Just("91".to_owned()),
        Just("0".to_owned()),
        Just("00".to_owned()),
        Just("0091".to_owned()),
        Just("1".to_owned()),
        Just("44".to_owned()),
        Just("7".to_owned()),
    ];
    (
        prop::bool::ANY,
        digits,
        "[0-9][0-9 -]{0,16}[0-9]",
        "[0-9 ()x.-]{0,2}",
    )
        .prop_map(|(plus, start, rest, odd)| {
            format!("{}{start}{rest}{odd}", if plus { "+" } else { "" })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn generated_numbers_agree_with_the_crate(
        text in shaped(),
        at in 0..REGIONS.len(),
    ) {
        let id = region(REGIONS[at]);
        prop_assert_eq!(Phone::new(id).to_e164(&text), oracle(id, &text), "{:?} in {}", text, REGIONS[at]);
    }
}
