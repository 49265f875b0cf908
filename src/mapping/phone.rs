//! The `phone` transform: a number to E.164, with exactly the results of the
//! `phonenumber` crate (`parse`, then `is_valid`) at a fraction of its cost.
//!
//! The crate keeps its metadata patterns in one LRU cache behind a mutex, keyed by the
//! pattern text: checking one number hashed a dozen patterns of hundreds of characters,
//! and its general parser (nom combinators, extension regexes) cost as much again. That
//! made phones half the cost of mapping a record. Here:
//!
//! - each country code's patterns are compiled once into one anchored regex set, built
//!   on first use from the crate's own metadata ([`valid`]);
//! - the shapes CRMs send (`+91-9123456780`, `+91 98765 43210`, `098765 43210`,
//!   `9876543210`: an optional `+`, digits, spaces and dashes) are parsed here, following
//!   the crate's parser step by step, quirks included ([`Home::parse`]); anything else,
//!   and default regions whose national prefix needs the crate's parsing patterns, go
//!   through the crate's parser. Where the crate asks the general description's possible
//!   lengths, the answer is written in: its metadata lists none for any region, which a
//!   test checks (`general_descriptions_list_no_lengths`).
//!
//! `phone/tests.rs` compares both with the crate on every region's example numbers and
//! on generated ones. Nothing here remembers results: every record is parsed and checked.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, OnceLock};

use phonenumber::country;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

pub const NOT_A_NUMBER: &str = "not a phone number";
pub const NOT_VALID: &str = "not a valid phone number";

/// The crate's limits on a national (significant) number.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// The compiled `phone: { default_region }` transform.
#[derive(Debug, Clone)]
pub struct Phone {
    region: country::Id,
    /// `None` when the region's national prefix needs the crate's parsing patterns.
    home: Option<Arc<Home>>,
}

impl Phone {
    pub fn new(region: country::Id) -> Phone {
        let home = DATABASE.by_id(region.as_ref()).and_then(Home::new);
        // Numbers are mostly from the default region: compile its patterns with the
        // mapping rather than on the first record.
        if let Some(h) = &home {
            rules_for(h.code);
        }
        Phone {
            region,
            home: home.map(Arc::new),
        }
    }

    /// The number in E.164 (`+<country code><national number>`), or why not.
    pub fn to_e164(&self, text: &str) -> Result<String, &'static str> {
        let text = text.trim();
        let mut buf = [0; 40];
        let (code, national) = match self.home.as_ref().and_then(|h| h.parse(text, &mut buf)) {
            Some(parsed) => parsed
                .map(|(code, n)| (code, Cow::Borrowed(n)))
                .ok_or(NOT_A_NUMBER)?,
            None => {
                let number =
                    phonenumber::parse(Some(self.region), text).map_err(|_| NOT_A_NUMBER)?;
                let national = number.national().to_string();
                (number.country().code(), Cow::Owned(national))
            }
        };
        if !valid(code, &national) {
            return Err(NOT_VALID);
        }
        // Written directly: the crate's formatter matches the national formatting
        // patterns first, even for E.164.
        let mut out = String::with_capacity(1 + 3 + national.len());
        out.push('+');
        out.push_str(itoa(code, &mut [0; 5]));
        out.push_str(&national);
        Ok(out)
    }
}

fn itoa(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// A metadata pattern as the crate applies it: in `x` mode, and only matches at the
/// start of the text count (it takes the leftmost match and checks that it starts at 0).
fn anchored(pattern: &str) -> String {
    // The newline ends a `#` comment in `x` mode, should a pattern hold one.
    format!("\\A(?:{pattern}\n)")
}

fn regex(pattern: &str) -> Regex {
    RegexBuilder::new(&anchored(pattern))
        .ignore_whitespace(true)
        .build()
        // Static data: the crate compiled every pattern when it loaded, and a test
        // compiles every country's here.
        .expect("phone metadata patterns compile")
}

/// `Descriptor::is_match`'s length test: no lengths listed means any length.
fn length_listed(lengths: &[u16], len: usize) -> bool {
    lengths.is_empty() || lengths.contains(&(len as u16))
}

/// What the crate's `number_type(meta, n) != Unknown` tests, in one search: the general
/// description matches, and so does one of the number types. The general description
/// lists no possible lengths, so only its pattern is asked.
#[derive(Debug)]
struct Kinds {
    /// Pattern 0 is the general description; pattern `i + 1` the type whose possible
    /// lengths are `lengths[i]`.
    set: RegexSet,
    lengths: Vec<Vec<u16>>,
}

impl Kinds {
    fn new(meta: &Metadata) -> Kinds {
        let d = meta.descriptors();
        let types: Vec<&Descriptor> = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let patterns = std::iter::once(d.general())
            .chain(types.iter().copied())
            .map(|k| anchored(k.national_number().as_str()));
        let set = RegexSetBuilder::new(patterns)
            .ignore_whitespace(true)
            .build()
            .expect("phone metadata patterns compile");
        Kinds {
            set,
            lengths: types.iter().map(|k| k.possible_length().to_vec()).collect(),
        }
    }

    fn known(&self, national: &str) -> bool {
        let matched = self.set.matches(national);
        matched.matched(0)
            && self.lengths.iter().enumerate().any(|(i, lengths)| {
                matched.matched(i + 1) && length_listed(lengths, national.len())
            })
    }
}

/// One region of a country code, for the crate's `source_for`.
#[derive(Debug)]
struct Region {
    leading_digits: Option<Regex>,
    kinds: Kinds,
}

/// The regions sharing a country code, in the crate's order (main country first).
#[derive(Debug)]
struct CodeRules {
    regions: Vec<Region>,
}

impl CodeRules {
    fn new(code: u16) -> Option<CodeRules> {
        let ids = DATABASE.region(&code)?;
        let metas: Vec<&Metadata> = match ids.as_slice() {
            // Non-geographic codes (`001`) share one id: the crate looks them up by code.
            ["001"] => DATABASE.by_code(&code)?.into_iter().take(1).collect(),
            [one] => {
                one.parse::<country::Id>().ok()?;
                vec![DATABASE.by_id(*one)?]
            }
            many => many.iter().filter_map(|id| DATABASE.by_id(*id)).collect(),
        };
        let single = ids.len() == 1;
        Some(CodeRules {
            regions: metas
                .into_iter()
                .map(|meta| Region {
                    // A single region is taken without looking at its leading digits.
                    leading_digits: meta
                        .leading_digits()
                        .filter(|_| !single)
                        .map(|p| regex(p.as_str())),
                    kinds: Kinds::new(meta),
                })
                .collect(),
        })
    }

    /// `is_valid`: the first region whose leading digits match decides; a region
    /// without leading digits (a code's only region never has any here) is taken when
    /// the number is one of its types.
    fn valid(&self, national: &str) -> bool {
        for region in &self.regions {
            match &region.leading_digits {
                Some(re) if re.is_match(national) => return region.kinds.known(national),
                Some(_) => {}
                None if region.kinds.known(national) => return true,
                None => {}
            }
        }
        false
    }
}

/// Country codes are at most three digits.
const CODES: usize = 1000;

/// Compiled rules per country code, built on first use: at most one per code in the
/// metadata (about 250), never per number.
static RULES: [OnceLock<Option<CodeRules>>; CODES] = [const { OnceLock::new() }; CODES];

fn rules_for(code: u16) -> Option<&'static CodeRules> {
    RULES
        .get(usize::from(code))?
        .get_or_init(|| CodeRules::new(code))
        .as_ref()
}

/// The crate's `is_valid` for a number it would parse to `code` and `national`.
pub fn valid(code: u16, national: &str) -> bool {
    rules_for(code).is_some_and(|r| r.valid(national))
}

/// Which country codes exist (the crate's `by_code(..).is_some()`, without its allocation).
/// Asked code by code: `DATABASE.iter()` holds one of the non-geographic entities only.
static KNOWN_CODES: LazyLock<Vec<bool>> = LazyLock::new(|| {
    (0..CODES as u16)
        .map(|code| DATABASE.by_code(&code).is_some())
        .collect()
});

fn code_exists(code: u16) -> bool {
    KNOWN_CODES.get(usize::from(code)).copied().unwrap_or(false)
}

/// What parsing needs of the default region. Only built for regions without a
/// `national_prefix_for_parsing` pattern (most of them, India included).
#[derive(Debug)]
struct Home {
    code: u16,
    code_text: String,
    international_prefix: Option<Regex>,
    national_prefix: Option<String>,
}

/// How a number reached its country code; only the parts of the crate's `Source`
/// that change what happens next.
#[derive(PartialEq, Eq)]
enum From {
    /// `+` or an international prefix: the country code starts the digits.
    Plus,
    /// No prefix: the default region's country code.
    Default,
}

impl Home {
    fn new(meta: &Metadata) -> Option<Home> {
        if meta.national_prefix_for_parsing().is_some() {
            return None;
        }
        Some(Home {
            code: meta.country_code(),
            code_text: meta.country_code().to_string(),
            international_prefix: meta.international_prefix().map(|p| regex(p.as_str())),
            national_prefix: meta.national_prefix().map(str::to_owned),
        })
    }

    /// `None` when `text` is not one of the shapes handled here; else the crate's
    /// result: the country code and national number, or `None` where it fails.
    /// The digits are written to `buf`, which the national number is a suffix of.
    fn parse<'b>(&self, text: &str, buf: &'b mut [u8; 40]) -> Option<Option<(u16, &'b str)>> {
        let bytes = text.as_bytes();
        let body = bytes.strip_prefix(b"+").unwrap_or(bytes);
        let plus = body.len() < bytes.len();
        let shaped = body.first().is_some_and(u8::is_ascii_digit)
            && body.last().is_some_and(u8::is_ascii_digit)
            && body
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'-');
        if !shaped {
            return None;
        }
        // The crate tries RFC 3966 first; it takes no spaces, and `+` must end at a
        // dash: `+91-98…` is country code 91 then `-98…`, whatever follows.
        let rfc3966 = !body.contains(&b' ') && (!plus || body.contains(&b'-'));
        let viable = |s: &[u8]| {
            let n = s.iter().filter(|b| b.is_ascii_digit()).count();
            s.len() >= MIN_NSN && (n >= 3 || (s.len() == 2 && n == 2))
        };
        if rfc3966 && plus {
            let dash = body.iter().position(|b| *b == b'-')?;
            let (prefix, rest) = body.split_at(dash);
            if !viable(rest) {
                return Some(None);
            }
            // `prefix` is ASCII digits: a failed parse is a code over 65535.
            let code = std::str::from_utf8(prefix).ok()?.parse::<u16>().ok();
            return Some(
                code.filter(|c| code_exists(*c))
                    .and_then(|c| self.finish(c, digits(rest, buf)?)),
            );
        }
        if !viable(bytes) {
            return Some(None);
        }
        let mut national = digits(body, buf)?;
        let mut from = if plus { From::Plus } else { From::Default };
        if let Some(idd) = &self.international_prefix
            && let Some(m) = idd.find(national)
            && !national[m.end()..].starts_with('0')
        {
            national = &national[m.end()..];
            from = From::Plus;
        }
        Some(match from {
            From::Plus => self.country_code(national),
            From::Default => self.default_country(national),
        })
    }

    /// The crate's `country_code` for a number that starts with its country code.
    fn country_code<'b>(&self, national: &'b str) -> Option<(u16, &'b str)> {
        if national.len() <= MIN_NSN || national.starts_with('0') {
            return None;
        }
        let len = (1..=3).find(|len| national[..*len].parse().is_ok_and(code_exists))?;
        let code = national[..len].parse().ok()?;
        self.finish(code, &national[len..])
    }

    /// The crate's `country_code` for a number without `+` or international prefix: it
    /// is national, unless it starts with the region's code and is not a possible
    /// national number as it stands. The crate tells possible numbers by the general
    /// description's possible lengths; with none listed, none is possible, and the code
    /// always comes off.
    fn default_country<'b>(&self, national: &'b str) -> Option<(u16, &'b str)> {
        let national = national
            .strip_prefix(self.code_text.as_str())
            .unwrap_or(national);
        self.finish(self.code, national)
    }

    /// The rest of the crate's `parse_with`, once the country code is known: the default
    /// region's national prefix comes off (twice, as the crate does), then the national
    /// number's limits. The crate keeps the prefix when taking it off leaves a number
    /// too short for the general description's possible lengths; with none listed, no
    /// number is too short.
    fn finish<'b>(&self, code: u16, mut national: &'b str) -> Option<(u16, &'b str)> {
        if let Some(prefix) = &self.national_prefix {
            for _ in 0..2 {
                national = national.strip_prefix(prefix.as_str()).unwrap_or(national);
            }
        }
        if !(MIN_NSN..=MAX_NSN).contains(&national.len()) {
            return None;
        }
        // `NationalNumber`: leading zeros apart, the rest must be a number below 2^56.
        let value: u64 = national.trim_start_matches('0').parse().ok()?;
        (value < 1 << 56).then_some((code, national))
    }
}

/// The digits of `s` (what the crate's normalisation leaves of the shapes parsed here),
/// written to `buf`; `None` when they do not fit, and the crate parses the number.
fn digits<'b>(s: &[u8], buf: &'b mut [u8; 40]) -> Option<&'b str> {
    let mut n = 0;
    for d in s.iter().filter(|b| b.is_ascii_digit()) {
        *buf.get_mut(n)? = *d;
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).ok()
}

#[cfg(test)]
mod tests;
