//! A small namespace-blind element tree over quick-xml's reader, and the checks every
//! BeyondTrust XML answer goes through (`<error>` as root or as a child of the root).
//!
//! The appliance's default namespace changed over the years and values move between
//! attributes and child elements, so answers are read into this tree by local name and
//! then picked apart leniently; serde derive would have to encode each variant.

use chrono::{DateTime, TimeZone, Utc};
use quick_xml::encoding::Decoder;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::Error;

/// One element: local name, attributes by local name, direct text, child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All direct children with this name (zero, one or many).
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The items of a list container (`<rep_list><representative/>…`), empty when the
    /// container is absent.
    pub fn list<'a>(&'a self, container: &str, item: &'a str) -> Vec<&'a Element> {
        self.child(container)
            .map(|c| c.children(item).collect())
            .unwrap_or_default()
    }

    /// Own text, trimmed; `None` when blank.
    pub fn value(&self) -> Option<String> {
        let t = self.text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// Trimmed text of a child; `None` when the child is absent or blank.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).and_then(Element::value)
    }

    /// Trimmed attribute value; `None` when absent or blank.
    pub fn attr_text(&self, name: &str) -> Option<String> {
        self.attr(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// A time written as `timestamp="<unix>"` with ISO 8601 text, or either alone.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.attr("timestamp")
            .and_then(parse_unix)
            .or_else(|| self.value().as_deref().and_then(parse_time_text))
    }
}

/// Unix seconds.
pub(crate) fn parse_unix(s: &str) -> Option<DateTime<Utc>> {
    s.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| Utc.timestamp_opt(n, 0).single())
}

/// ISO 8601 with offset, or Unix seconds.
pub(crate) fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_unix(s))
}

/// `1`/`true`/`yes` (case-insensitive) as true, `0`/`false`/`no` as false.
pub(crate) fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Parse a whole document into its root element. Namespaces and prefixes are dropped;
/// comments, processing instructions and the DOCTYPE are skipped (entities of a DTD are
/// never expanded).
pub(crate) fn parse(body: &str) -> Result<Element, Error> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Error::Malformed(format!("XML error at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(Error::Malformed("content after the root element".into()));
                }
                stack.push(open(&start, reader.decoder())?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(Error::Malformed("content after the root element".into()));
                }
                let el = open(&start, reader.decoder())?;
                close(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| Error::Malformed("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(t) => {
                let s = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(malformed)?.map(String::from)
                } else {
                    let name = r.decode().map_err(malformed)?;
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
                };
                let s = resolved.ok_or_else(|| Error::Malformed("unknown XML entity".into()))?;
                push_text(&mut stack, &s)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(Error::Malformed("document ends inside an element".into()));
    }
    root.ok_or_else(|| Error::Malformed("no XML root element".into()))
}

fn malformed(e: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("XML error: {e}"))
}

fn open(start: &BytesStart<'_>, decoder: Decoder) -> Result<Element, Error> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(malformed)?;
        // Namespace declarations are not data.
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr.decode_and_unescape_value(decoder).map_err(malformed)?.into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), Error> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(Error::Malformed("text outside the root element".into())),
    }
}

/// Parse an answer and check it: `<error>` as root or as a child of the root is the
/// vendor's error (`Error::Api`), any other root than `expected` is `Malformed`.
pub(crate) fn expect_root(body: &str, expected: &str) -> Result<Element, Error> {
    let root = parse(body)?;
    if root.name == "error" {
        return Err(api_error(&root));
    }
    if let Some(err) = root.child("error") {
        return Err(api_error(err));
    }
    if root.name != expected {
        return Err(Error::Malformed(format!("expected <{expected}>, got <{}>", root.name)));
    }
    Ok(root)
}

/// The vendor's error text if `body` is an XML error document in either shape.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let root = parse(body).ok()?;
    if root.name == "error" {
        return Some(error_text(&root));
    }
    root.child("error").map(error_text)
}

fn api_error(el: &Element) -> Error {
    Error::Api(error_text(el))
}

fn error_text(el: &Element) -> String {
    el.value()
        .or_else(|| el.attr_text("message"))
        .unwrap_or_else(|| "unspecified error".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMESPACES: [&str; 4] = [
        "http://www.bomgar.com/namespaces/API/command",
        "https://www.beyondtrust.com/namespaces/API/command",
        "http://www.beyondtrust.com/sra/namespaces/API/reporting",
        "http://www.beyondtrust.com/sra/namespaces/API/command",
    ];

    #[test]
    fn every_known_namespace_parses_by_local_name() {
        for ns in NAMESPACES {
            let doc = format!(
                r#"<?xml version="1.0"?><logged_in_reps xmlns="{ns}"><rep id="1"><display_name>A</display_name></rep></logged_in_reps>"#
            );
            let root = expect_root(&doc, "logged_in_reps").unwrap();
            assert_eq!(root.children("rep").count(), 1, "{ns}");
            assert!(root.attrs.is_empty(), "xmlns is not an attribute");
        }
        let prefixed = r#"<ns:session_list xmlns:ns="urn:x"><ns:session ns:lsid="ab"/></ns:session_list>"#;
        let root = expect_root(prefixed, "session_list").unwrap();
        assert_eq!(root.child("session").unwrap().attr("lsid"), Some("ab"));
    }

    #[test]
    fn entities_character_references_and_cdata_are_resolved() {
        let root = parse("<a x=\"1&amp;2\">fish &amp; chips &#65;&#x42; <![CDATA[<raw>]]></a>").unwrap();
        assert_eq!(root.text, "fish & chips AB <raw>");
        assert_eq!(root.attr("x"), Some("1&2"));
    }

    #[test]
    fn error_root_and_error_child_are_api_errors() {
        for (doc, why) in [
            ("<error>No sessions matched</error>", "root"),
            (
                r#"<error xmlns="urn:x">No sessions matched</error>"#,
                "root with namespace",
            ),
            (
                "<logged_in_reps><error>No sessions matched</error></logged_in_reps>",
                "child",
            ),
        ] {
            match expect_root(doc, "logged_in_reps") {
                Err(Error::Api(m)) => assert_eq!(m, "No sessions matched", "{why}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        assert!(matches!(expect_root("<error/>", "x"), Err(Error::Api(m)) if m == "unspecified error"));
        assert_eq!(error_message("<x><error> boom </error></x>").as_deref(), Some("boom"));
        assert_eq!(error_message("<x/>"), None);
    }

    #[test]
    fn broken_or_unexpected_documents_are_malformed() {
        for (doc, why) in [
            ("", "empty"),
            ("not xml at all", "text"),
            ("<a><b></a>", "mismatched tags"),
            ("<a>", "unterminated"),
            ("<a/><b/>", "two roots"),
            ("<html><body>Login</body></html>", "wrong root"),
            ("<a>&bogus;</a>", "unknown entity"),
        ] {
            assert!(matches!(expect_root(doc, "a"), Err(Error::Malformed(_))), "{why}");
        }
    }

    #[test]
    fn times_come_from_the_timestamp_attribute_or_the_text() {
        let both = parse(r#"<t timestamp="1795425312">2026-11-23T09:15:12+00:00</t>"#).unwrap();
        let iso = parse("<t>2026-11-23T10:15:12+01:00</t>").unwrap();
        let unix = parse("<t>1795425312</t>").unwrap();
        let expected = parse_unix("1795425312").unwrap();
        assert_eq!(both.time(), Some(expected));
        assert_eq!(iso.time(), Some(expected));
        assert_eq!(unix.time(), Some(expected));
        assert_eq!(parse("<t>soon</t>").unwrap().time(), None);
    }
}
