//! The Salesforce parser on generated XML of hostile shapes, not only on mutated bytes:
//! libFuzzer's byte mutations rarely build an element with 100,000 attributes or
//! 150,000 siblings, the shapes that once made a parse quadratic (47.8 s for one body).
//!
//! The input drives a generator: the first byte picks the shape, the next two its size
//! (up to the 5 MiB body limit), the rest fills names and values. Every document must be
//! answered, parsed or refused, in time linear in its size: past the guard's limits it
//! must be refused, and no answer may take more than a second.
#![no_main]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use webengage_bridge::source::{salesforce, xml_guard};

const MAX_BODY: usize = 5 * 1024 * 1024;

/// What one generated document is.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One element with `n` attributes (duplicates when the filler repeats).
    AttributeHeavy,
    /// `n` namespace declarations on one element, and a prefixed name using the last.
    NamespaceHeavy,
    /// `n` sibling elements under `notifications`.
    ManyElements,
    /// `n` nested elements.
    Deep,
    /// `n` notifications of a genuine message, each with a few attributes.
    ManyNotifications,
    /// Comments and processing instructions between elements.
    ManyComments,
}

const SHAPES: [Shape; 6] = [
    Shape::AttributeHeavy,
    Shape::NamespaceHeavy,
    Shape::ManyElements,
    Shape::Deep,
    Shape::ManyNotifications,
    Shape::ManyComments,
];

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5j00000KqRtBEAV</OrganizationId>"#;
const TAIL: &str = "</notifications></soapenv:Body></soapenv:Envelope>";

/// A short name from the filler bytes: letters only, so the document stays well formed.
fn name(filler: &[u8], i: usize) -> char {
    let byte = filler.get(i % filler.len().max(1)).copied().unwrap_or(0);
    (b'a' + byte % 26) as char
}

/// The document for `shape` with `n` repetitions; `filler` varies the names (a repeated
/// name makes duplicate attributes, which the parser must refuse, not slow down on).
fn generate(shape: Shape, n: usize, filler: &[u8]) -> String {
    let mut xml = String::with_capacity(n * 16 + HEAD.len() + TAIL.len());
    xml.push_str(HEAD);
    match shape {
        Shape::AttributeHeavy => {
            xml.push_str("<Notification");
            for i in 0..n {
                let _ = write!(xml, " {}{i}=\"\"", name(filler, i));
            }
            xml.push_str("/>");
        }
        Shape::NamespaceHeavy => {
            xml.push_str("<Notification");
            for i in 0..n {
                let _ = write!(xml, " xmlns:{}{i}=\"urn:{i}\"", name(filler, i));
            }
            let last = n.saturating_sub(1);
            let _ = write!(xml, "><{}{last}:x/></Notification>", name(filler, last));
        }
        Shape::ManyElements => {
            for i in 0..n {
                let _ = write!(xml, "<{}/>", name(filler, i));
            }
        }
        Shape::Deep => {
            for i in 0..n {
                let _ = write!(xml, "<{}>", name(filler, i));
            }
            for i in (0..n).rev() {
                let _ = write!(xml, "</{}>", name(filler, i));
            }
        }
        Shape::ManyNotifications => {
            for i in 0..n {
                let _ = write!(
                    xml,
                    r#"<Notification><Id>04l5j00000B{i:07}</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>00Q5j00000L{i:07}</sf:Id><sf:Email>{}@example.com</sf:Email></sObject></Notification>"#,
                    name(filler, i)
                );
            }
        }
        Shape::ManyComments => {
            for i in 0..n {
                let _ = write!(xml, "<!--{}--><?pi {i}?>", name(filler, i));
            }
        }
    }
    xml.push_str(TAIL);
    xml.truncate(MAX_BODY.max(HEAD.len()));
    xml
}

fuzz_target!(|input: &[u8]| {
    let [shape, hi, lo, filler @ ..] = input else {
        return;
    };
    let shape = SHAPES[usize::from(*shape) % SHAPES.len()];
    // Up to 65,535 repetitions, sometimes times 4: past every limit, under 5 MiB.
    let mut n = usize::from(u16::from_be_bytes([*hi, *lo]));
    if filler.first().is_some_and(|b| b & 1 == 1) {
        n *= 4;
    }
    let xml = generate(shape, n, filler);
    let started = Instant::now();
    let parsed = salesforce::parse_notifications(xml.as_bytes());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{shape:?} x{n} ({} bytes) took {took:?}",
        xml.len()
    );
    let refused_by_the_guard = match shape {
        Shape::AttributeHeavy => n > xml_guard::MAX_ATTRIBUTES_PER_ELEMENT,
        Shape::NamespaceHeavy => n > xml_guard::MAX_NAMESPACES_IN_SCOPE,
        Shape::Deep => n > salesforce::MAX_DEPTH,
        Shape::ManyNotifications => n > salesforce::MAX_NOTIFICATIONS,
        Shape::ManyElements | Shape::ManyComments => n > salesforce::MAX_NODES as usize,
    };
    if refused_by_the_guard {
        assert!(parsed.is_err(), "{shape:?} x{n} was accepted");
    }
});
