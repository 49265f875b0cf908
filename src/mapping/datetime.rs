//! Dates and times: the forms CRMs send, and WebEngage's timestamp format.
//!
//! Most dates in a record have one of two fixed shapes: LeadSquared's
//! `2024-01-15 10:30:00`, and values already in WebEngage's format (what the `datetime`
//! transform wrote, checked again for `user.birthDate` and `event.eventTime`). Those are
//! read and written digit by digit: jiff's general parser builds an error (an
//! allocation) for each form it tries and rejects before the one that fits, and its
//! strftime interprets the format on every call. The results are jiff's: the tests
//! compare both routes.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};

/// WebEngage's timestamp format: `yyyy-MM-ddTHH:mm:ss+0000`, always in UTC.
pub fn webengage_time(ts: Timestamp) -> String {
    let dt = Offset::UTC.to_datetime(ts);
    if !(0..=9999).contains(&dt.year()) {
        return ts.strftime("%Y-%m-%dT%H:%M:%S+0000").to_string();
    }
    let mut out = String::with_capacity(24);
    let mut push = |n: i16, width: u32, then: char| {
        for p in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10i16.pow(p) % 10) as u8));
        }
        out.push(then);
    };
    push(dt.year(), 4, '-');
    push(dt.month().into(), 2, '-');
    push(dt.day().into(), 2, 'T');
    push(dt.hour().into(), 2, ':');
    push(dt.minute().into(), 2, ':');
    push(dt.second().into(), 2, '+');
    out.push_str("0000");
    out
}

/// An event's time: WebEngage's format with milliseconds before the offset
/// (`yyyy-MM-ddTHH:mm:ss.SSS+0000`, as WebEngage's own migration client sends) when
/// the time has them, so events of one second keep their order; without them, the
/// plain format.
pub fn webengage_event_time(ts: Timestamp) -> String {
    let millis = Offset::UTC.to_datetime(ts).subsec_nanosecond() / 1_000_000;
    let plain = webengage_time(ts);
    if millis == 0 {
        return plain;
    }
    let (seconds, offset) = plain.split_at(plain.len() - 5);
    format!("{seconds}.{millis:03}{offset}")
}

/// Whether `text` is already what [`webengage_event_time`] writes for a time with
/// milliseconds.
pub fn is_exact_webengage_event_time(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 28
        && b[19] == b'.'
        && b[20..23].iter().all(u8::is_ascii_digit)
        && &text[20..23] != "000"
        && text.ends_with("+0000")
        && fixed_civil(&text[..19], b'T').is_some()
}

/// Whether `text` is already what parsing it and writing it in WebEngage's format
/// gives: that format, with a date and time that exist.
pub fn is_exact_webengage_time(text: &str) -> bool {
    text.len() == 24 && text.ends_with("+0000") && fixed_civil(&text[..19], b'T').is_some()
}

/// Parses the datetime forms CRMs send. Times without an offset are read in `tz`.
pub fn parse_datetime(
    text: &str,
    format: Option<&str>,
    tz: &TimeZone,
) -> Result<Timestamp, String> {
    let text = text.trim();
    // `YYYY-MM-DD HH:MM:SS` has no offset: jiff's timestamp parse refuses it, the
    // `+0000` repair does not apply, and its civil parse reads these fields.
    let fixed = format
        .is_none()
        .then(|| fixed_civil(text, b' ').or_else(|| fixed_civil(text, b'T')))
        .flatten();
    match fixed {
        Some(dt) => in_zone(dt, tz).ok_or_else(|| failure(None)),
        None => parse_general(text, format, tz),
    }
}

fn failure(format: Option<&str>) -> String {
    format!(
        "not a date/time{}",
        format
            .map(|f| format!(" in format `{f}`"))
            .unwrap_or_default()
    )
}

fn in_zone(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

/// `YYYY-MM-DD?HH:MM:SS` with `sep` between date and time, when every field is in
/// range (`DateTime::new` refuses leap seconds, which jiff's parser would clamp).
fn fixed_civil(text: &str, sep: u8) -> Option<DateTime> {
    const SHAPE: &[u8; 19] = b"dddd-dd-dd?dd:dd:dd";
    let b = text.as_bytes();
    let shaped = b.len() == SHAPE.len()
        && b.iter().zip(SHAPE).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            b'?' => *c == sep,
            other => c == other,
        });
    if !shaped {
        return None;
    }
    let n = |at: usize, len: usize| {
        b[at..at + len]
            .iter()
            .fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))
    };
    let small = |at: usize| n(at, 2) as i8;
    DateTime::new(
        n(0, 4),
        small(5),
        small(8),
        small(11),
        small(14),
        small(17),
        0,
    )
    .ok()
}

/// Every form jiff knows: RFC 3339 and ISO 8601 timestamps, `+0000` offsets, naive
/// dates and times read in `tz`, or the given strftime format.
fn parse_general(text: &str, format: Option<&str>, tz: &TimeZone) -> Result<Timestamp, String> {
    let fail = || failure(format);
    if let Some(format) = format {
        let parsed = jiff::fmt::strtime::parse(format, text).map_err(|_| fail())?;
        if parsed.offset().is_some() {
            return parsed.to_timestamp().map_err(|_| fail());
        }
        let dt = parsed
            .to_datetime()
            .or_else(|_| {
                parsed
                    .to_date()
                    .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
            })
            .map_err(|_| fail())?;
        return in_zone(dt, tz).ok_or_else(fail);
    }
    // jiff reads offsets with and without the colon: Salesforce's `+0000` as well.
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let naive = text
        .parse::<DateTime>()
        .or_else(|_| {
            text.parse::<Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .map_err(|_| fail())?;
    in_zone(naive, tz).ok_or_else(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jiff_time(ts: Timestamp) -> String {
        ts.strftime("%Y-%m-%dT%H:%M:%S+0000").to_string()
    }

    /// Dates with every field at or just past its limits.
    fn shaped(sep: &'static str, tail: &'static str) -> impl Strategy<Value = String> {
        (
            0u16..=9999,
            0u8..=13,
            0u8..=32,
            0u8..=25,
            0u8..=61,
            0u8..=61,
        )
            .prop_map(move |(y, mo, d, h, mi, s)| {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{tail}")
            })
    }

    proptest! {
        #[test]
        fn fixed_shapes_read_as_jiff_reads_them(
            text in prop_oneof![shaped(" ", ""), shaped("T", "")],
            kolkata in any::<bool>(),
        ) {
            let tz = if kolkata { TimeZone::get("Asia/Kolkata").expect("tz") } else { TimeZone::UTC };
            prop_assert_eq!(parse_datetime(&text, None, &tz), parse_general(&text, None, &tz));
        }

        #[test]
        fn webengage_times_are_recognised_exactly(text in shaped("T", "+0000")) {
            let again = parse_general(&text, None, &TimeZone::UTC).map(jiff_time);
            prop_assert_eq!(is_exact_webengage_time(&text), again.as_deref() == Ok(text.as_str()));
        }

        #[test]
        fn event_times_are_recognised_exactly(
            text in shaped("T", "").prop_flat_map(|civil| {
                let tails = prop_oneof![
                    Just(".123+0000"),
                    Just(".000+0000"),
                    Just(".1234+0000"),
                    Just(".12+0000"),
                    Just("x123+0000"),
                    Just(".12a+0000"),
                    Just(".123+0530"),
                    Just(".123Z"),
                ];
                tails.prop_map(move |tail| format!("{civil}{tail}"))
            }),
        ) {
            let again = parse_general(&text, None, &TimeZone::UTC).map(webengage_event_time);
            prop_assert_eq!(
                is_exact_webengage_event_time(&text),
                again.as_deref() == Ok(text.as_str())
            );
        }

        #[test]
        fn written_as_strftime_writes(secs in -377_705_116_800i64..=253_402_300_799) {
            let Ok(ts) = Timestamp::from_second(secs) else { return Ok(()) };
            prop_assert_eq!(webengage_time(ts), jiff_time(ts));
        }
    }

    #[test]
    fn event_times_keep_milliseconds_only_when_there_are_some() {
        let tz = TimeZone::UTC;
        let with = parse_datetime("2024-01-15T10:30:00.123+0000", None, &tz).unwrap();
        assert_eq!(webengage_event_time(with), "2024-01-15T10:30:00.123+0000");
        assert!(is_exact_webengage_event_time(
            "2024-01-15T10:30:00.123+0000"
        ));
        let lsq = parse_datetime("2024-01-15 10:30:00.007", None, &tz).unwrap();
        assert_eq!(webengage_event_time(lsq), "2024-01-15T10:30:00.007+0000");
        let zero = parse_datetime("2024-01-15T10:30:00.000+0000", None, &tz).unwrap();
        assert_eq!(webengage_event_time(zero), "2024-01-15T10:30:00+0000");
        assert!(!is_exact_webengage_event_time(
            "2024-01-15T10:30:00.000+0000"
        ));
        let before_1970 = parse_datetime("1969-12-31T23:59:59.250Z", None, &tz).unwrap();
        assert_eq!(
            webengage_event_time(before_1970),
            "1969-12-31T23:59:59.250+0000"
        );
        assert_eq!(webengage_time(with), "2024-01-15T10:30:00+0000");
    }

    #[test]
    fn offsets_are_read_with_or_without_a_colon() {
        let utc = TimeZone::UTC;
        let at = |text| parse_datetime(text, None, &utc).map(webengage_event_time);
        for (text, want) in [
            ("2024-01-15T10:30:00+0000", "2024-01-15T10:30:00+0000"),
            (
                "2024-01-15T16:00:00.250+0530",
                "2024-01-15T10:30:00.250+0000",
            ),
            (
                "2024-01-15T05:00:00.250-0530",
                "2024-01-15T10:30:00.250+0000",
            ),
            (
                "2024-01-15T16:00:00.250+05:30",
                "2024-01-15T10:30:00.250+0000",
            ),
        ] {
            assert_eq!(at(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn a_failure_names_the_format_it_tried() {
        let utc = TimeZone::UTC;
        assert_eq!(
            parse_datetime("next tuesday", None, &utc),
            Err("not a date/time".to_owned())
        );
        assert_eq!(
            parse_datetime("2024-02-30 10:00:00", None, &utc),
            Err("not a date/time".to_owned())
        );
        assert_eq!(
            parse_datetime("15.01.2024", Some("%d/%m/%Y"), &utc),
            Err("not a date/time in format `%d/%m/%Y`".to_owned())
        );
    }

    #[test]
    fn edges() {
        assert_eq!(webengage_time(Timestamp::MIN), jiff_time(Timestamp::MIN));
        assert_eq!(webengage_time(Timestamp::MAX), jiff_time(Timestamp::MAX));
        assert!(!is_exact_webengage_time("2024-02-30T10:00:00+0000"));
        assert!(!is_exact_webengage_time("2024-01-15T10:30:00+0530"));
        assert!(is_exact_webengage_time("0000-01-01T00:00:00+0000"));
    }
}
