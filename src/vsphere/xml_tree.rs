//! A small element tree built from `quick-xml` events, with the XML rules of
//! PROTOCOL.md §6: no DOCTYPE, only the five predefined entities and character
//! references, text taken from all character data of an element (CDATA,
//! references and comments cannot split or hide a value).

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The XML Schema instance namespace (`xsi:type`, `xsi:nil`).
pub(crate) const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// Deepest element nesting accepted below the element a tree starts at.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why XML was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, as `quick-xml` reports it.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// `<!DOCTYPE ...>`.
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    /// `&name;` other than `lt`, `gt`, `amp`, `apos`, `quot`.
    #[error("entity reference '&{0};' is not allowed (only the five predefined entities)")]
    Entity(String),
    /// `&#...;` that is malformed or names a character XML does not allow.
    #[error("character reference '&{0};' is not allowed")]
    CharRef(String),
    /// `<?target ...?>` other than the XML declaration.
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    /// A declaration that is not first, not version 1.0 or not UTF-8.
    #[error("XML declaration not accepted: {0}")]
    Declaration(String),
    /// Bytes that are not UTF-8.
    #[error("XML is not UTF-8")]
    NotUtf8,
    /// A prefix with no namespace declaration in scope.
    #[error("undeclared namespace prefix '{0}'")]
    UnknownPrefix(String),
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A character XML 1.0 does not allow (most control characters).
    #[error("character U+{0:04X} is not allowed in XML")]
    IllegalChar(u32),
    /// Non-whitespace text where only elements may be.
    #[error("text outside an element is not allowed")]
    StrayText,
    /// More or fewer than one root element.
    #[error("expected exactly one root element")]
    RootCount,
    /// The input ends inside an element.
    #[error("XML ends before its root element is closed")]
    Truncated,
}

impl From<quick_xml::Error> for XmlError {
    fn from(err: quick_xml::Error) -> Self {
        Self::Malformed(err.to_string())
    }
}

impl From<quick_xml::encoding::EncodingError> for XmlError {
    fn from(_: quick_xml::encoding::EncodingError) -> Self {
        Self::NotUtf8
    }
}

/// One element: local name, non-namespace attributes, child elements, and its own text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) local: String,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

/// One attribute (namespace declarations are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) ns: Option<String>,
    pub(crate) local: String,
    pub(crate) value: String,
}

impl Element {
    /// The value of `xsi:type`, if present.
    pub(crate) fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(XSI_NS) && a.local == "type")
            .map(|a| a.value.as_str())
    }

    /// The value of an attribute without namespace, e.g. `type` of a managed object reference.
    pub(crate) fn plain_attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// The first attribute outside `versionId`, `xsi:type` and the plain names in `also`.
    pub(crate) fn disallowed_attr(&self, also: &[&str]) -> Option<&Attr> {
        self.attrs.iter().find(|a| match a.ns.as_deref() {
            None => a.local != "versionId" && !also.contains(&a.local.as_str()),
            Some(XSI_NS) => a.local != "type",
            Some(_) => true,
        })
    }

    /// Whether its own text is only XML whitespace.
    pub(crate) fn text_is_blank(&self) -> bool {
        self.text.chars().all(is_xml_space)
    }
}

/// Builds the subtree below one element from start, text and end events.
pub(crate) struct TreeBuilder {
    stack: Vec<Element>,
}

impl TreeBuilder {
    /// Starts a tree at `root` (already opened).
    pub(crate) fn new(root: Element) -> Self {
        Self { stack: vec![root] }
    }

    /// Open elements, the root included.
    pub(crate) fn depth(&self) -> usize {
        self.stack.len()
    }

    /// The root element as built so far.
    pub(crate) fn root(&self) -> Option<&Element> {
        self.stack.first()
    }

    /// Opens a child of the innermost open element.
    pub(crate) fn open(&mut self, element: Element) -> Result<(), XmlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        self.stack.push(element);
        Ok(())
    }

    /// Adds a childless element (`<x/>`) to the innermost open element.
    pub(crate) fn empty(&mut self, element: Element) -> Result<(), XmlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        if let Some(top) = self.stack.last_mut() {
            top.children.push(element);
        }
        Ok(())
    }

    /// Appends character data to the innermost open element.
    pub(crate) fn text(&mut self, text: &str) {
        if let Some(top) = self.stack.last_mut() {
            top.text.push_str(text);
        }
    }

    /// Closes the innermost element; returns the root when it is the one closed.
    pub(crate) fn close(&mut self) -> Option<Element> {
        let closed = self.stack.pop()?;
        match self.stack.last_mut() {
            Some(parent) => {
                parent.children.push(closed);
                None
            }
            None => Some(closed),
        }
    }
}

/// Whether `c` is XML whitespace.
pub(crate) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Refuses characters outside the XML 1.0 `Char` production.
pub(crate) fn check_chars(text: &str) -> Result<(), XmlError> {
    match text.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(XmlError::IllegalChar(u32::from(c))),
        None => Ok(()),
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "apos" => Some("'"),
        "quot" => Some("\""),
        _ => None,
    }
}

/// Resolves a `&...;` reference in text: the five predefined entities and character references.
pub(crate) fn resolve_ref(reference: &BytesRef<'_>) -> Result<char, XmlError> {
    let name = reference.decode()?;
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix('x') {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).ok()
            }
            None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                number.parse::<u32>().ok()
            }
            _ => None,
        };
        return code
            .and_then(char::from_u32)
            .filter(|&c| is_xml_char(c))
            .ok_or_else(|| XmlError::CharRef(name.clone().into_owned()));
    }
    predefined_entity(&name)
        .and_then(|s| s.chars().next())
        .ok_or_else(|| XmlError::Entity(name.into_owned()))
}

/// Accepts only `<?xml version="1.0" [encoding="UTF-8"] ...?>`.
pub(crate) fn check_decl(decl: &BytesDecl<'_>) -> Result<(), XmlError> {
    let version = decl.version()?;
    if version.as_ref() != b"1.0" {
        return Err(XmlError::Declaration(format!(
            "version '{}' (only 1.0)",
            String::from_utf8_lossy(&version)
        )));
    }
    if let Some(encoding) = decl.encoding() {
        let encoding = encoding.map_err(|e| XmlError::Malformed(e.to_string()))?;
        if !encoding.eq_ignore_ascii_case(b"utf-8") {
            return Err(XmlError::Declaration(format!(
                "encoding '{}' (send UTF-8)",
                String::from_utf8_lossy(&encoding)
            )));
        }
    }
    Ok(())
}

/// Namespace of a resolved name, as text.
pub(crate) fn namespace_of(resolved: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match resolved {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => std::str::from_utf8(ns.as_ref())
            .map(|s| Some(s.to_owned()))
            .map_err(|_| XmlError::NotUtf8),
        ResolveResult::Unknown(prefix) => Err(XmlError::UnknownPrefix(
            String::from_utf8_lossy(&prefix).into_owned(),
        )),
    }
}

/// Reads a start tag into an [`Element`] (no children yet), resolving attribute namespaces.
pub(crate) fn element_start(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let local = std::str::from_utf8(start.local_name().as_ref())
        .map_err(|_| XmlError::NotUtf8)?
        .to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, attr_local) = reader.resolve_attribute(attr.key);
        let ns = namespace_of(resolved)?;
        let attr_local = std::str::from_utf8(attr_local.as_ref())
            .map_err(|_| XmlError::NotUtf8)?
            .to_owned();
        let value = attr
            .decode_and_unescape_value_with(reader.decoder(), predefined_entity)
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        check_chars(&value)?;
        attrs.push(Attr {
            ns,
            local: attr_local,
            value: value.into_owned(),
        });
    }
    Ok(Element {
        local,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Character data of a text or CDATA event, line ends normalised, characters checked.
pub(crate) fn checked_text(text: Cow<'_, str>) -> Result<Cow<'_, str>, XmlError> {
    check_chars(&text)?;
    Ok(text)
}

/// Parses a standalone XML fragment with one root element (an `ExecuteSoap` argument value).
pub(crate) fn parse_fragment(input: &str) -> Result<Element, XmlError> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut reader = NsReader::from_str(input);
    let mut builder: Option<TreeBuilder> = None;
    let mut root: Option<Element> = None;
    let mut first = true;
    loop {
        let (resolved, event) = reader.read_resolved_event()?;
        namespace_of(resolved)?;
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) if was_first => check_decl(&decl)?,
            Event::Decl(_) => {
                return Err(XmlError::Declaration("it must come first".into()));
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::Comment(_) => {}
            Event::Text(text) => {
                let text = checked_text(text.xml10_content()?)?;
                match builder.as_mut() {
                    Some(b) => b.text(&text),
                    None if text.chars().all(is_xml_space) => {}
                    None => return Err(XmlError::StrayText),
                }
            }
            Event::CData(data) => {
                let text = checked_text(data.xml10_content()?)?;
                builder.as_mut().ok_or(XmlError::StrayText)?.text(&text);
            }
            Event::GeneralRef(reference) => {
                let c = resolve_ref(&reference)?;
                builder
                    .as_mut()
                    .ok_or(XmlError::StrayText)?
                    .text(c.encode_utf8(&mut [0; 4]));
            }
            Event::Start(start) => {
                let element = element_start(&reader, &start)?;
                match builder.as_mut() {
                    Some(b) => b.open(element)?,
                    None if root.is_none() => builder = Some(TreeBuilder::new(element)),
                    None => return Err(XmlError::RootCount),
                }
            }
            Event::Empty(start) => {
                let element = element_start(&reader, &start)?;
                match builder.as_mut() {
                    Some(b) => b.empty(element)?,
                    None if root.is_none() => root = Some(element),
                    None => return Err(XmlError::RootCount),
                }
            }
            Event::End(_) => {
                if let Some(b) = builder.as_mut()
                    && let Some(done) = b.close()
                {
                    root = Some(done);
                    builder = None;
                }
            }
            Event::Eof => {
                return match (builder, root) {
                    (None, Some(root)) => Ok(root),
                    (Some(_), _) => Err(XmlError::Truncated),
                    (None, None) => Err(XmlError::RootCount),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_text_joins_all_character_data() {
        let el = parse_fragment("<enable>tr<!-- x -->u<![CDATA[e]]></enable>").expect("parses");
        assert_eq!(el.local, "enable");
        assert_eq!(el.text, "true");
        let el = parse_fragment("<enable>&#116;rue&#x0021;&amp;</enable>").expect("parses");
        assert_eq!(el.text, "true!&");
    }

    #[test]
    fn fragment_refusals() {
        for bad in [
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a>&x;</a>",
            "<a>&nbsp;</a>",
            "<a>&#0;</a>",
            "<a>&#1;</a>",
            "<a>&#+65;</a>",
            "<a>&#xZZ;</a>",
            "<a/><b/>",
            "<a>",
            "x<a/>",
            "<?pi x?><a/>",
            " <?xml version=\"1.0\"?><a/>",
            "<?xml version=\"1.1\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
            "<p:a/>",
            "<a>\u{1}</a>",
            "<a x=\"1\" x=\"2\"/>",
            "<a x=\"&nbsp;\"/>",
            "",
        ] {
            assert!(parse_fragment(bad).is_err(), "{bad:?}");
        }
        assert!(parse_fragment("<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>").is_ok());
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(parse_fragment(&deep), Err(XmlError::TooDeep));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse_fragment(&ok).is_ok());
    }

    #[test]
    fn attributes_resolve_namespaces() {
        let el = parse_fragment(
            r#"<o xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:boolean" versionId="1">true</o>"#,
        )
        .expect("parses");
        assert_eq!(el.xsi_type(), Some("xsd:boolean"));
        assert!(el.disallowed_attr(&[]).is_none());
        let el = parse_fragment(r##"<o href="#id1"/>"##).expect("parses");
        assert_eq!(
            el.disallowed_attr(&[]).map(|a| a.local.as_str()),
            Some("href")
        );
    }
}
