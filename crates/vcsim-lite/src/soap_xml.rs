//! Namespace-aware parsing of a SOAP request envelope into a small element tree.

use quick_xml::NsReader;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};

/// SOAP 1.1 envelope namespace.
const SOAP11_NS: &[u8] = b"http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
const SOAP12_NS: &[u8] = b"http://www.w3.org/2003/05/soap-envelope";
/// XML Schema instance namespace (for `xsi:type`).
const XSI_NS: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most elements accepted in one envelope.
const MAX_ELEMENTS: usize = 100_000;

/// One XML element: local name, the attributes vim cares about, text and children.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct XmlNode {
    /// Local name (prefix removed).
    pub(crate) name: String,
    /// Namespace URI of the element, if bound.
    pub(crate) namespace: Option<String>,
    /// Unprefixed `type` attribute (managed object references).
    pub(crate) type_attr: Option<String>,
    /// `xsi:type` attribute, resolved by namespace.
    pub(crate) xsi_type: Option<String>,
    /// All character data directly inside the element, entities resolved.
    pub(crate) text: String,
    /// Child elements in document order.
    pub(crate) children: Vec<XmlNode>,
}

impl XmlNode {
    /// Child elements named `name`.
    pub(crate) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlNode> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a SOAP envelope and returns the method element, the single element inside `Body`.
pub(crate) fn parse_method_element(body: &[u8]) -> Result<XmlNode, String> {
    let text = std::str::from_utf8(body).map_err(|_| "request body is not UTF-8".to_string())?;
    let root = parse_document(text)?;
    if root.name != "Envelope" || !is_soap_ns(root.namespace.as_deref()) {
        return Err("root element is not a SOAP Envelope".into());
    }
    let mut bodies = root
        .children
        .iter()
        .filter(|c| c.name == "Body" && is_soap_ns(c.namespace.as_deref()));
    let soap_body = bodies.next().ok_or("SOAP Body missing")?;
    if bodies.next().is_some() {
        return Err("more than one SOAP Body".into());
    }
    let mut methods = soap_body.children.iter();
    match (methods.next(), methods.next()) {
        (Some(method), None) => Ok(method.clone()),
        (None, _) => Err("SOAP Body is empty".into()),
        (Some(_), Some(_)) => Err("SOAP Body holds more than one element".into()),
    }
}

/// Whether `ns` is a SOAP envelope namespace.
fn is_soap_ns(ns: Option<&str>) -> bool {
    matches!(ns, Some(n) if n.as_bytes() == SOAP11_NS || n.as_bytes() == SOAP12_NS)
}

/// Parses a whole document into its root element.
fn parse_document(text: &str) -> Result<XmlNode, String> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<XmlNode> = Vec::new();
    let mut root: Option<XmlNode> = None;
    let mut elements = 0usize;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        let namespace = namespace_string(&ns);
        if root.is_some() && matches!(event, Event::Start(_) | Event::Empty(_)) {
            return Err("content after the root element".into());
        }
        match event {
            Event::Start(start) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err("XML nested too deeply or too large".into());
                }
                stack.push(element(&reader, &start, namespace)?);
            }
            Event::Empty(start) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err("XML nested too deeply or too large".into());
                }
                let node = element(&reader, &start, namespace)?;
                close(&mut stack, &mut root, node);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, &mut root, node);
            }
            Event::Text(t) => {
                let chunk = t.xml10_content().map_err(|e| format!("bad text: {e}"))?;
                push_text(&mut stack, &chunk)?;
            }
            Event::CData(c) => {
                let chunk = c.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                push_text(&mut stack, &chunk)?;
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| format!("bad character reference: {e}"))?
                        .ok_or("bad character reference")?
                } else {
                    let name = r.decode().map_err(|e| format!("bad reference: {e}"))?;
                    match name.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("unknown entity &{other};")),
                    }
                };
                push_text(&mut stack, resolved.encode_utf8(&mut [0u8; 4]))?;
            }
            Event::DocType(_) => return Err("DOCTYPE is not allowed".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("unexpected end of document".into());
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// The namespace URI of a resolution result, if bound.
fn namespace_string(ns: &ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(Namespace(uri)) => Some(String::from_utf8_lossy(uri).into_owned()),
        _ => None,
    }
}

/// Builds a node from a start tag, keeping `type` and `xsi:type`.
fn element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    namespace: Option<String>,
) -> Result<XmlNode, String> {
    let mut node = XmlNode {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        namespace,
        ..XmlNode::default()
    };
    for attr in start.attributes() {
        let attr: Attribute<'_> = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let (ns, local) = reader.resolve_attribute(attr.key);
        let value = || -> Result<String, String> {
            attr.unescape_value()
                .map(|v| v.into_owned())
                .map_err(|e| format!("bad attribute value: {e}"))
        };
        match (ns, local.as_ref()) {
            (ResolveResult::Unbound, b"type") => node.type_attr = Some(value()?),
            (ResolveResult::Bound(Namespace(uri)), b"type") if uri == XSI_NS => {
                node.xsi_type = Some(value()?)
            }
            (ResolveResult::Unknown(prefix), _) => {
                return Err(format!(
                    "unknown namespace prefix {}",
                    String::from_utf8_lossy(&prefix)
                ));
            }
            _ => {}
        }
    }
    Ok(node)
}

/// Attaches a finished node to its parent, or makes it the root.
fn close(stack: &mut [XmlNode], root: &mut Option<XmlNode>, node: XmlNode) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

/// Appends character data to the open element; outside the root only whitespace is allowed.
fn push_text(stack: &mut [XmlNode], chunk: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(chunk);
            Ok(())
        }
        None if chunk.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyvmomi_envelope_parses() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soapenv:Body><ChangeLockdownMode xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostAccessManager">ha-host-access-manager</_this><mode versionId="8.0.3.0">lockdown<!-- x -->Strict</mode></ChangeLockdownMode></soapenv:Body>
</soapenv:Envelope>"#;
        let m = parse_method_element(xml.as_bytes()).expect("parses");
        assert_eq!(m.name, "ChangeLockdownMode");
        assert_eq!(m.namespace.as_deref(), Some("urn:vim25"));
        let this = m.children_named("_this").next().expect("_this");
        assert_eq!(this.type_attr.as_deref(), Some("HostAccessManager"));
        assert_eq!(this.text, "ha-host-access-manager");
        assert_eq!(
            m.children_named("mode").next().expect("mode").text,
            "lockdownStrict"
        );
    }

    #[test]
    fn prefixes_and_default_namespaces_vary() {
        let xml = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><vim25:Logout xmlns:vim25="urn:vim25"><vim25:_this type="SessionManager">Session&amp;Manager&#x21;</vim25:_this></vim25:Logout></Body></Envelope>"#;
        let m = parse_method_element(xml.as_bytes()).expect("parses");
        assert_eq!(m.name, "Logout");
        assert_eq!(m.children[0].text, "Session&Manager!");
        let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:x="http://www.w3.org/2001/XMLSchema-instance"><soap:Body><Fetch xmlns="urn:vim25"><obj x:type="TraversalSpec"><![CDATA[a<b]]></obj></Fetch></soap:Body></soap:Envelope>"#;
        let m = parse_method_element(xml.as_bytes()).expect("parses");
        assert_eq!(m.children[0].xsi_type.as_deref(), Some("TraversalSpec"));
        assert_eq!(m.children[0].text, "a<b");
    }

    #[test]
    fn bad_documents_are_errors() {
        for bad in [
            "",
            "not xml",
            "<a>",
            r#"<!DOCTYPE x [<!ENTITY e "x">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><A/></soapenv:Body></soapenv:Envelope>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><A/><B/></soapenv:Body></soapenv:Envelope>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body></soapenv:Body></soapenv:Envelope>"#,
            r#"<Envelope><Body><A/></Body></Envelope>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><A>&foo;</A></soapenv:Body></soapenv:Envelope>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><A></B></soapenv:Body></soapenv:Envelope>"#,
        ] {
            assert!(parse_method_element(bad.as_bytes()).is_err(), "{bad}");
        }
        let deep = format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{}{}</soapenv:Body></soapenv:Envelope>"#,
            "<a>".repeat(10_000),
            "</a>".repeat(10_000)
        );
        assert!(parse_method_element(deep.as_bytes()).is_err());
    }
}
