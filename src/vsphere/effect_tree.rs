//! A protocol-neutral view of vim method parameters, so that the effect rules in
//! [`super::effects`] read VI/JSON and SOAP bodies with one piece of code.
//!
//! JSON objects and SOAP elements with children become [`Node::Struct`] (arrays are
//! repeated fields, as SOAP writes them); JSON strings, numbers and booleans and SOAP
//! text-only elements become [`Node::Text`] in their lexical form. `_typeName` and
//! `xsi:type` become the struct's type name; a JSON managed object reference
//! (`{"type","value"}`) and a SOAP one (`<host type="HostSystem">host-21</host>`)
//! both read as a [`MoRef`].

use serde_json::Value;

use super::operation::MoRef;
use super::xml_tree::Element;

/// Deepest nesting the effect rules walk; deeper bodies are refused.
const MAX_DEPTH: usize = 48;

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A scalar in its lexical form, with the `type` attribute of a SOAP managed object reference.
    Text {
        /// The text.
        text: String,
        /// SOAP `type="..."` (managed object references only).
        mo_type: Option<String>,
    },
    /// A data object or the parameter list of a method.
    Struct {
        /// `_typeName` / `xsi:type` (prefix removed), if sent.
        type_name: Option<String>,
        /// Fields in order; an array is the same name repeated.
        fields: Vec<(String, Node)>,
    },
}

/// A body the effect rules cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// Nested deeper than the rules walk.
    #[error("{0}: parameters nested too deeply")]
    TooDeep(String),
    /// An array inside an array: no vim parameter has that shape.
    #[error("{0}: an array directly inside an array is not a vim value")]
    NestedArray(String),
    /// An element holding both text and child elements.
    #[error("{0}: element holds both text and elements")]
    MixedContent(String),
}

impl Node {
    /// The parameters of a VI/JSON body (its top-level object).
    pub(crate) fn from_json_params(
        map: &serde_json::Map<String, Value>,
        context: &str,
    ) -> Result<Self, TreeError> {
        json_object(map, context, 0)
    }

    /// The parameters of a SOAP method element (its children after `_this`).
    pub(crate) fn from_xml_params(params: &[Element], context: &str) -> Result<Self, TreeError> {
        let mut fields = Vec::with_capacity(params.len());
        for child in params {
            fields.push((child.local.clone(), xml_node(child, context, 0)?));
        }
        Ok(Self::Struct {
            type_name: None,
            fields,
        })
    }

    /// One SOAP element (e.g. an `ExecuteSoap` argument value) as a node.
    pub(crate) fn from_xml_element(element: &Element, context: &str) -> Result<Self, TreeError> {
        xml_node(element, context, 0)
    }

    /// The fields of a struct (none for text).
    pub(crate) fn fields(&self) -> &[(String, Node)] {
        match self {
            Self::Struct { fields, .. } => fields,
            Self::Text { .. } => &[],
        }
    }

    /// The type name of a struct.
    pub(crate) fn type_name(&self) -> Option<&str> {
        match self {
            Self::Struct { type_name, .. } => type_name.as_deref(),
            Self::Text { .. } => None,
        }
    }

    /// Every value of field `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.fields()
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The text of a scalar.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Self::Text { text, .. } => Some(text),
            Self::Struct { .. } => None,
        }
    }

    /// A managed object reference in either protocol's form.
    pub(crate) fn mo_ref(&self) -> Option<MoRef> {
        match self {
            Self::Text {
                text,
                mo_type: Some(ty),
            } => Some(MoRef::new(ty.clone(), text.clone())),
            Self::Text { mo_type: None, .. } => None,
            Self::Struct { .. } => {
                let ty = self.all("type").next()?.text()?;
                let value = self.all("value").next()?.text()?;
                (self.fields().len() == 2).then(|| MoRef::new(ty, value))
            }
        }
    }

    /// Calls `visit(field name, value)` for every field at every depth.
    pub(crate) fn visit<'a>(&'a self, visit: &mut impl FnMut(&'a str, &'a Node)) {
        for (name, value) in self.fields() {
            visit(name, value);
            value.visit(visit);
        }
    }
}

fn json_object(
    map: &serde_json::Map<String, Value>,
    context: &str,
    depth: usize,
) -> Result<Node, TreeError> {
    if depth > MAX_DEPTH {
        return Err(TreeError::TooDeep(context.to_owned()));
    }
    let type_name = map
        .get("_typeName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // A boxed scalar (`{"_typeName":"string","_value":"DCUI"}`) reads as its value.
    if let (Some(_), Some(inner), 2) = (&type_name, map.get("_value"), map.len()) {
        return match inner {
            Value::Array(items) => {
                let mut fields = Vec::new();
                for item in items {
                    if let Some(node) = json_value(item, context, depth + 1, false)? {
                        fields.push(("_value".to_owned(), node));
                    }
                }
                Ok(Node::Struct { type_name, fields })
            }
            other => Ok(
                json_value(other, context, depth + 1, true)?.unwrap_or(Node::Text {
                    text: String::new(),
                    mo_type: None,
                }),
            ),
        };
    }
    let mut fields = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key == "_typeName" {
            continue;
        }
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(node) = json_value(item, context, depth + 1, false)? {
                        fields.push((key.clone(), node));
                    }
                }
            }
            other => {
                if let Some(node) = json_value(other, context, depth + 1, true)? {
                    fields.push((key.clone(), node));
                }
            }
        }
    }
    Ok(Node::Struct { type_name, fields })
}

fn json_value(
    value: &Value,
    context: &str,
    depth: usize,
    arrays_allowed: bool,
) -> Result<Option<Node>, TreeError> {
    let text = |text: String| {
        Ok(Some(Node::Text {
            text,
            mo_type: None,
        }))
    };
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => text(b.to_string()),
        Value::Number(n) => text(n.to_string()),
        Value::String(s) => text(s.clone()),
        Value::Object(map) => json_object(map, context, depth).map(Some),
        Value::Array(_) if !arrays_allowed => Err(TreeError::NestedArray(context.to_owned())),
        Value::Array(items) => {
            let mut fields = Vec::new();
            for item in items {
                if let Some(node) = json_value(item, context, depth + 1, false)? {
                    fields.push(("_item".to_owned(), node));
                }
            }
            Ok(Some(Node::Struct {
                type_name: None,
                fields,
            }))
        }
    }
}

fn xml_node(element: &Element, context: &str, depth: usize) -> Result<Node, TreeError> {
    if depth > MAX_DEPTH {
        return Err(TreeError::TooDeep(context.to_owned()));
    }
    let type_name = element
        .xsi_type()
        .map(|t| t.rsplit(':').next().unwrap_or(t).to_owned());
    if element.children.is_empty() {
        return Ok(Node::Text {
            text: element.text.clone(),
            mo_type: element.plain_attr("type").map(str::to_owned),
        });
    }
    if !element.text_is_blank() {
        return Err(TreeError::MixedContent(context.to_owned()));
    }
    let mut fields = Vec::with_capacity(element.children.len());
    for child in &element.children {
        fields.push((child.local.clone(), xml_node(child, context, depth + 1)?));
    }
    Ok(Node::Struct { type_name, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::xml_tree::parse_fragment;

    fn json(text: &str) -> Node {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            panic!("object")
        };
        Node::from_json_params(&map, "test").expect("tree")
    }

    #[test]
    fn both_protocols_read_alike() {
        let from_json = json(
            r#"{"_typeName":"X","host":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-21"},"users":["a","b"],"n":3,"flag":true}"#,
        );
        let xml = parse_fragment(
            r#"<p><host type="HostSystem">host-21</host><users>a</users><users>b</users><n>3</n><flag>true</flag></p>"#,
        )
        .expect("xml");
        let from_xml = Node::from_xml_params(&xml.children, "test").expect("tree");
        for node in [&from_json, &from_xml] {
            assert_eq!(
                node.all("host").next().and_then(Node::mo_ref),
                Some(MoRef::new("HostSystem", "host-21"))
            );
            let users: Vec<_> = node.all("users").filter_map(Node::text).collect();
            assert_eq!(users, ["a", "b"]);
            assert_eq!(node.all("n").next().and_then(Node::text), Some("3"));
            assert_eq!(node.all("flag").next().and_then(Node::text), Some("true"));
        }
    }

    #[test]
    fn boxed_scalars_unbox_and_bad_shapes_are_refused() {
        let node = json(r#"{"value":{"_typeName":"string","_value":"root"}}"#);
        assert_eq!(node.all("value").next().and_then(Node::text), Some("root"));
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(r#"{"a":[[1]]}"#) else {
            panic!("object")
        };
        assert!(Node::from_json_params(&map, "t").is_err());
        let mixed = parse_fragment("<p><a>x<b>y</b></a></p>").expect("xml");
        assert!(Node::from_xml_params(&mixed.children, "t").is_err());
    }
}
