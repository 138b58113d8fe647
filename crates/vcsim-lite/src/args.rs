//! Protocol-neutral access to method parameters (a VI/JSON object or a SOAP element).

use serde_json::Value as Json;

use super::soap_xml::XmlNode;
use super::value::MoRef;

/// Method parameters or one nested value, from either wire protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Args<'a> {
    /// A VI/JSON value.
    Json(&'a Json),
    /// A SOAP element.
    Xml(&'a XmlNode),
}

impl<'a> Args<'a> {
    /// The first value of field `name`.
    pub(crate) fn field(&self, name: &str) -> Option<Args<'a>> {
        self.list(name).into_iter().next()
    }

    /// All values of field `name` (JSON array items, or repeated XML elements).
    pub(crate) fn list(&self, name: &str) -> Vec<Args<'a>> {
        match self {
            Self::Json(Json::Object(map)) => match map.get(name) {
                Some(Json::Array(items)) => items.iter().map(Args::Json).collect(),
                Some(Json::Null) | None => Vec::new(),
                Some(other) => vec![Args::Json(other)],
            },
            Self::Json(_) => Vec::new(),
            Self::Xml(node) => node
                .children
                .iter()
                .filter(|c| c.name == name)
                .map(Args::Xml)
                .collect(),
        }
    }

    /// The scalar text of this value, untrimmed (JSON numbers and booleans as text).
    pub(crate) fn raw_text(&self) -> Option<String> {
        match self {
            Self::Json(Json::String(s)) => Some(s.clone()),
            Self::Json(Json::Number(n)) => Some(n.to_string()),
            Self::Json(Json::Bool(b)) => Some(b.to_string()),
            Self::Json(_) => None,
            Self::Xml(node) if node.children.is_empty() => Some(node.text.clone()),
            Self::Xml(_) => None,
        }
    }

    /// The scalar text of this value with surrounding whitespace removed.
    pub(crate) fn text(&self) -> Option<String> {
        self.raw_text().map(|t| t.trim().to_string())
    }

    /// The trimmed text of field `name`.
    pub(crate) fn str_field(&self, name: &str) -> Option<String> {
        self.field(name).and_then(|a| a.text())
    }

    /// Field `name` as a boolean; `Err` when present but not a boolean.
    pub(crate) fn bool_field(&self, name: &str) -> Result<Option<bool>, String> {
        match self.field(name) {
            None => Ok(None),
            Some(Args::Json(Json::Bool(b))) => Ok(Some(*b)),
            Some(Args::Json(_)) => Err(name.to_string()),
            Some(arg) => match arg.text().as_deref() {
                Some("true") | Some("1") => Ok(Some(true)),
                Some("false") | Some("0") => Ok(Some(false)),
                _ => Err(name.to_string()),
            },
        }
    }

    /// Field `name` as an int32; `Err` when present but not an integer in range.
    pub(crate) fn int_field(&self, name: &str) -> Result<Option<i32>, String> {
        match self.field(name) {
            None => Ok(None),
            Some(Args::Json(Json::Number(n))) => n
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| name.to_string()),
            Some(Args::Json(_)) => Err(name.to_string()),
            Some(arg) => arg
                .text()
                .and_then(|t| t.parse::<i32>().ok())
                .map(Some)
                .ok_or_else(|| name.to_string()),
        }
    }

    /// This value as a managed object reference.
    pub(crate) fn moref(&self) -> Option<MoRef> {
        match self {
            Self::Json(Json::Object(map)) => {
                let mo_type = map.get("type")?.as_str()?;
                let value = map.get("value")?.as_str()?;
                Some(MoRef::new(mo_type, value))
            }
            Self::Json(_) => None,
            Self::Xml(node) => {
                let mo_type = node.type_attr.as_deref()?;
                Some(MoRef::new(mo_type.trim(), node.text.trim()))
            }
        }
    }

    /// Field `name` as a managed object reference.
    pub(crate) fn moref_field(&self, name: &str) -> Option<MoRef> {
        self.field(name).and_then(|a| a.moref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_xml_read_alike() {
        let j = json!({"type": ["HostSystem", "Folder"], "recursive": true, "timeout": 300,
            "container": {"_typeName": "ManagedObjectReference", "type": "Folder", "value": "group-d1"}});
        let a = Args::Json(&j);
        assert_eq!(a.list("type").len(), 2);
        assert_eq!(a.bool_field("recursive"), Ok(Some(true)));
        assert_eq!(a.int_field("timeout"), Ok(Some(300)));
        assert_eq!(
            a.moref_field("container"),
            Some(MoRef::new("Folder", "group-d1"))
        );
        assert_eq!(a.int_field("missing"), Ok(None));
        let big = json!({"timeout": 1e20});
        assert!(Args::Json(&big).int_field("timeout").is_err());

        let x = XmlNode {
            name: "M".into(),
            children: vec![
                XmlNode {
                    name: "type".into(),
                    text: "HostSystem".into(),
                    ..Default::default()
                },
                XmlNode {
                    name: "recursive".into(),
                    text: " true ".into(),
                    ..Default::default()
                },
                XmlNode {
                    name: "container".into(),
                    type_attr: Some("Folder".into()),
                    text: "group-d1".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let a = Args::Xml(&x);
        assert_eq!(a.list("type").len(), 1);
        assert_eq!(a.bool_field("recursive"), Ok(Some(true)));
        assert_eq!(
            a.moref_field("container"),
            Some(MoRef::new("Folder", "group-d1"))
        );
    }
}
