//! A linear pre-scan of an XML body, before the DOM parser sees it.
//!
//! roxmltree's own limits count nodes, not attributes, and some of its checks grow with
//! the square of what one element carries (duplicate attributes and namespace
//! declarations are each compared with those before them; every prefixed name is looked
//! up among the namespaces in scope). One element with 160,000 attributes took 47.8 s.
//! This scan reads each byte once and refuses a document before that can happen:
//! - at most [`MAX_ATTRIBUTES_PER_ELEMENT`] attributes on one element (Salesforce puts a
//!   handful on its Envelope and one or two on the others);
//! - at most [`MAX_NAMESPACES_IN_SCOPE`] namespace declarations in scope at any element;
//! - nesting at most `MAX_DEPTH` deep;
//! - elements, attributes, comments and processing instructions together at most
//!   `MAX_NODES`: attributes count against the node limit like elements do;
//! - no DTD.
//!
//! The scan does not check well-formedness: roxmltree does that afterwards, on a
//! document now small enough in every dimension for its checks to stay cheap.

use super::BodyError;

/// Attributes on one element, namespace declarations included.
pub const MAX_ATTRIBUTES_PER_ELEMENT: usize = 16;
/// Namespace declarations visible at one element (its own and its ancestors').
/// Salesforce's messages have five.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 32;

/// The limits of one scan.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_nodes: usize,
}

/// Scans `text`; `Err` names the limit that was passed.
pub fn check(text: &str, limits: Limits) -> Result<(), BodyError> {
    let mut scan = Scan {
        bytes: text.as_bytes(),
        at: 0,
        limits,
        nodes: 0,
        // Namespace declarations of each open element, innermost last.
        open: Vec::new(),
        namespaces_in_scope: 0,
    };
    scan.document()
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    limits: Limits,
    nodes: usize,
    open: Vec<usize>,
    namespaces_in_scope: usize,
}

impl Scan<'_> {
    fn document(&mut self) -> Result<(), BodyError> {
        while let Some(lt) = self.find_byte(b'<') {
            self.at = lt + 1;
            let rest = &self.bytes[self.at..];
            if rest.starts_with(b"!--") {
                self.count_node()?;
                self.skip_past(b"-->");
            } else if rest.starts_with(b"![CDATA[") {
                self.skip_past(b"]]>");
            } else if rest.starts_with(b"!") {
                return Err(BodyError("DTDs are not accepted".to_owned()));
            } else if rest.starts_with(b"?") {
                self.count_node()?;
                self.skip_past(b"?>");
            } else if rest.starts_with(b"/") {
                self.close();
                self.skip_past(b">");
            } else {
                self.start_tag()?;
            }
        }
        Ok(())
    }

    /// From just after `<` to just after the tag's `>`.
    fn start_tag(&mut self) -> Result<(), BodyError> {
        self.count_node()?;
        if self.open.len() == self.limits.max_depth {
            return Err(BodyError(format!(
                "XML is nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        let (mut attributes, mut namespaces) = (0, 0);
        // Where the current name began, and whether one is being read.
        let mut name_start: Option<usize> = None;
        let mut last_name = 0..0;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'"' | b'\'' => {
                    self.at += 1;
                    self.skip_past(&[b]);
                    name_start = None;
                    continue;
                }
                b'=' => {
                    let name = &self.bytes[last_name.clone()];
                    attributes += 1;
                    if attributes > MAX_ATTRIBUTES_PER_ELEMENT {
                        return Err(BodyError(format!(
                            "an XML element has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes"
                        )));
                    }
                    self.count_node()?;
                    if name == b"xmlns" || name.starts_with(b"xmlns:") {
                        namespaces += 1;
                    }
                    name_start = None;
                }
                b'>' => {
                    self.at += 1;
                    let empty = self.at >= 2 && self.bytes[self.at - 2] == b'/';
                    return self.opened(namespaces, empty);
                }
                b if b.is_ascii_whitespace() => name_start = None,
                _ => {
                    let start = *name_start.get_or_insert(self.at);
                    last_name = start..self.at + 1;
                }
            }
            self.at += 1;
        }
        Ok(())
    }

    fn opened(&mut self, namespaces: usize, empty: bool) -> Result<(), BodyError> {
        if self.namespaces_in_scope + namespaces > MAX_NAMESPACES_IN_SCOPE {
            return Err(BodyError(format!(
                "more than {MAX_NAMESPACES_IN_SCOPE} XML namespace declarations are in scope"
            )));
        }
        if !empty {
            self.namespaces_in_scope += namespaces;
            self.open.push(namespaces);
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(namespaces) = self.open.pop() {
            self.namespaces_in_scope -= namespaces;
        }
    }

    fn count_node(&mut self) -> Result<(), BodyError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(BodyError(format!(
                "the XML document has more than {} nodes",
                self.limits.max_nodes
            )));
        }
        Ok(())
    }

    fn find_byte(&self, byte: u8) -> Option<usize> {
        self.bytes[self.at..]
            .iter()
            .position(|&b| b == byte)
            .map(|i| self.at + i)
    }

    /// Moves past the next `needle`, or to the end when there is none.
    fn skip_past(&mut self, needle: &[u8]) {
        let rest = &self.bytes[self.at..];
        self.at = match rest.windows(needle.len()).position(|w| w == needle) {
            Some(i) => self.at + i + needle.len(),
            None => self.bytes.len(),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 32,
        max_nodes: 1000,
    };

    fn scan(xml: &str) -> Result<(), String> {
        check(xml, LIMITS).map_err(|e| e.0)
    }

    #[test]
    fn a_salesforce_shaped_message_passes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><!-- c -->
<Notification><Id>04l</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
<sf:Email>a=b@example.com</sf:Email><sf:Phone xsi:nil="true"/><sf:Note><![CDATA[x <y a="1"> = ]]></sf:Note>
</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(scan(xml), Ok(()));
    }

    #[test]
    fn attributes_are_capped_per_element_and_counted_as_nodes() {
        let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=\"{i}\"")).collect::<String>();
        assert_eq!(scan(&format!("<e{}/>", attrs(16))), Ok(()));
        assert_eq!(
            scan(&format!("<e{}/>", attrs(17))),
            Err("an XML element has more than 16 attributes".to_owned())
        );
        // `=` and `>` inside quoted values are not attributes or ends.
        assert_eq!(
            scan(&format!("<e a=\"{}\" b='>'/>", "=".repeat(100))),
            Ok(())
        );
        // 400 elements with 2 attributes each: 1,200 nodes against a limit of 1,000.
        let many = format!("<r>{}</r>", "<e a=\"1\" b=\"2\"/>".repeat(400));
        assert_eq!(
            scan(&many),
            Err("the XML document has more than 1000 nodes".to_owned())
        );
    }

    #[test]
    fn namespaces_in_scope_depth_and_dtds_are_bounded() {
        let declare = |n: usize| {
            (0..n)
                .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
                .collect::<String>()
        };
        // 16 on each of two nested elements: 32 in scope passes, one more does not.
        let ok = format!("<a{}><b{}/></a>", declare(16), declare(16));
        assert_eq!(scan(&ok), Ok(()));
        let over = format!(
            "<a{}><b{}><c xmlns=\"urn:x\"/></b></a>",
            declare(16),
            declare(16)
        );
        assert!(scan(&over).unwrap_err().contains("namespace"));
        // Siblings do not add up: a closed element's declarations leave scope.
        let siblings = format!("<r>{}</r>", format!("<s{}/>", declare(16)).repeat(10));
        assert_eq!(scan(&siblings), Ok(()));

        assert_eq!(
            scan(&format!("{}{}", "<a>".repeat(32), "</a>".repeat(32))),
            Ok(())
        );
        assert_eq!(
            scan(&"<a>".repeat(33)),
            Err("XML is nested deeper than 32 levels".to_owned())
        );
        assert_eq!(
            scan("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>"),
            Err("DTDs are not accepted".to_owned())
        );
    }

    #[test]
    fn exactly_max_nodes_pass_and_one_more_does_not() {
        // The root and 999 children: 1,000 nodes.
        assert_eq!(scan(&format!("<r>{}</r>", "<e/>".repeat(999))), Ok(()));
        assert_eq!(
            scan(&format!("<r>{}</r>", "<e/>".repeat(1000))),
            Err("the XML document has more than 1000 nodes".to_owned())
        );
    }

    #[test]
    fn closed_elements_leave_depth_and_namespace_scope() {
        let declare = |n: usize| {
            (0..n)
                .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
                .collect::<String>()
        };
        // A hundred siblings with an end tag each never nest.
        assert_eq!(scan(&format!("<r>{}</r>", "<a></a>".repeat(100))), Ok(()));
        // Declarations of a closed sibling are out of scope: the next one can have the
        // whole 32 again.
        let after_sibling = format!(
            "<r><s{}></s><t{}><u{}/></t></r>",
            declare(16),
            declare(16),
            declare(16)
        );
        assert_eq!(scan(&after_sibling), Ok(()));
    }

    #[test]
    fn ordinary_attributes_are_not_namespace_declarations() {
        let plain = (0..16).map(|i| format!(" a{i}=\"x\"")).collect::<String>();
        let nested = format!("<a{plain}><b{plain}><c{plain}/></b></a>");
        assert_eq!(scan(&nested), Ok(()));
    }

    #[test]
    fn five_mebibytes_of_any_shape_scan_in_linear_time() {
        let limits = Limits {
            max_depth: 32,
            max_nodes: 200_000,
        };
        let size = 5 * 1024 * 1024;
        let shapes = [
            // One element, attributes without end.
            format!("<e {}", "a=\"\" ".repeat(size / 5)),
            // Elements without end.
            "<a/>".repeat(size / 4),
            // One unterminated quoted value, comment and CDATA section.
            format!("<e a=\"{}", "x".repeat(size)),
            format!("<!--{}", "-".repeat(size)),
            format!("<e><![CDATA[{}", "]".repeat(size)),
            // Text only.
            "x".repeat(size),
        ];
        for shape in &shapes {
            let started = Instant::now();
            let _ = check(shape, limits);
            // Generous: a debug build on a shared machine; the release figure is in BENCHMARKS.md.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{}: {:?}",
                &shape[..20],
                started.elapsed()
            );
        }
    }
}
