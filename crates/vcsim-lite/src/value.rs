//! A small model of vim values, rendered either as VI/JSON or as SOAP XML.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};
use vsphere_wire::fault::xml_escape;

/// A managed object reference: type and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MoRef {
    /// Managed object type, e.g. `HostSystem`.
    pub(crate) mo_type: String,
    /// Managed object id, e.g. `host-21`.
    pub(crate) value: String,
}

impl MoRef {
    /// A reference to `value` of type `mo_type`.
    pub(crate) fn new(mo_type: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            mo_type: mo_type.into(),
            value: value.into(),
        }
    }
}

/// One vim value: a primitive, an enum, a reference, a data object or an array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VimValue {
    /// `xsd:string`.
    Str(String),
    /// `xsd:boolean`.
    Bool(bool),
    /// `xsd:int`.
    Int(i32),
    /// `xsd:long`.
    Long(i64),
    /// `xsd:dateTime`, already formatted as RFC 3339.
    DateTime(String),
    /// An enum value of a named enum type.
    Enum(&'static str, String),
    /// A managed object reference.
    MoRef(MoRef),
    /// A data object: type name and fields in wire order (unset fields left out).
    Data(&'static str, Vec<(&'static str, VimValue)>),
    /// An array; the item type names the `ArrayOf...` type.
    Array(&'static str, Vec<VimValue>),
    /// A value in an `anyType` position: rendered with its type name.
    Any(Box<VimValue>),
    /// A data object kept in its VI/JSON form (a stored scheduled task's spec): data objects
    /// carry `_typeName`, primitives in `anyType` positions `{"_typeName", "_value"}`.
    Raw(Json),
}

impl VimValue {
    /// A string value.
    pub(crate) fn str(text: impl Into<String>) -> Self {
        Self::Str(text.into())
    }

    /// An enum value of `type_name`.
    pub(crate) fn enumv(type_name: &'static str, value: impl Into<String>) -> Self {
        Self::Enum(type_name, value.into())
    }

    /// A managed object reference value.
    pub(crate) fn moref(mo_type: impl Into<String>, value: impl Into<String>) -> Self {
        Self::MoRef(MoRef::new(mo_type, value))
    }

    /// An array of managed object references.
    pub(crate) fn morefs(items: impl IntoIterator<Item = MoRef>) -> Self {
        Self::Array(
            "ManagedObjectReference",
            items.into_iter().map(Self::MoRef).collect(),
        )
    }

    /// Wraps the value for an `anyType` position.
    pub(crate) fn any(self) -> Self {
        Self::Any(Box::new(self))
    }

    /// The field `name` of a data object, if this is one and the field is set.
    pub(crate) fn field(&self, name: &str) -> Option<&VimValue> {
        match self {
            Self::Data(_, fields) => fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
            Self::Any(inner) => inner.field(name),
            _ => None,
        }
    }

    /// The type name VI/JSON uses in `_typeName`.
    fn json_type_name(&self) -> String {
        match self {
            Self::Str(_) => "string".into(),
            Self::Bool(_) => "boolean".into(),
            Self::Int(_) => "int".into(),
            Self::Long(_) => "long".into(),
            Self::DateTime(_) => "dateTime".into(),
            Self::Enum(name, _) | Self::Data(name, _) => (*name).into(),
            Self::MoRef(_) => "ManagedObjectReference".into(),
            Self::Array(item, _) => array_type_name(item),
            Self::Any(inner) => inner.json_type_name(),
            Self::Raw(json) => json
                .get("_typeName")
                .and_then(Json::as_str)
                .unwrap_or("anyType")
                .to_owned(),
        }
    }

    /// The type name SOAP uses in `xsi:type`.
    fn xsi_type_name(&self) -> String {
        match self {
            Self::Str(_) => "xsd:string".into(),
            Self::Bool(_) => "xsd:boolean".into(),
            Self::Int(_) => "xsd:int".into(),
            Self::Long(_) => "xsd:long".into(),
            Self::DateTime(_) => "xsd:dateTime".into(),
            other => other.json_type_name(),
        }
    }

    /// The VI/JSON form of the value.
    pub(crate) fn to_json(&self) -> Json {
        match self {
            Self::Str(s) | Self::DateTime(s) | Self::Enum(_, s) => Json::String(s.clone()),
            Self::Bool(b) => Json::Bool(*b),
            Self::Int(i) => json!(i),
            Self::Long(i) => json!(i),
            Self::MoRef(r) => {
                json!({"_typeName": "ManagedObjectReference", "type": r.mo_type, "value": r.value})
            }
            Self::Data(type_name, fields) => {
                let mut map = Map::new();
                map.insert("_typeName".into(), Json::String((*type_name).into()));
                for (name, value) in fields {
                    map.insert((*name).into(), value.to_json());
                }
                Json::Object(map)
            }
            Self::Array(_, items) => Json::Array(items.iter().map(Self::to_json).collect()),
            Self::Raw(json) => json.clone(),
            Self::Any(inner) => match inner.as_ref() {
                Self::MoRef(_) | Self::Data(..) | Self::Any(_) | Self::Raw(_) => inner.to_json(),
                other => json!({"_typeName": other.json_type_name(), "_value": other.to_json()}),
            },
        }
    }

    /// Appends the SOAP form of the value as element(s) named `name`.
    ///
    /// Arrays in typed positions become repeated elements; `Any` values carry `xsi:type`.
    pub(crate) fn write_soap(&self, name: &str, out: &mut String) {
        match self {
            Self::Array(_, items) => {
                for item in items {
                    item.write_soap(name, out);
                }
            }
            Self::Any(inner) => inner.write_element(name, true, out),
            Self::Raw(json) => write_raw(name, json, out),
            other => other.write_element(name, false, out),
        }
    }

    /// Appends one element named `name`; `typed` adds `xsi:type` (data objects always get it).
    fn write_element(&self, name: &str, typed: bool, out: &mut String) {
        match self {
            Self::Any(inner) => return inner.write_element(name, true, out),
            Self::Raw(json) => return write_raw(name, json, out),
            _ => {}
        }
        out.push('<');
        out.push_str(name);
        if typed || matches!(self, Self::Data(..)) {
            out.push_str(" xsi:type=\"");
            out.push_str(&xml_escape(&self.xsi_type_name()));
            out.push('"');
        }
        if let Self::MoRef(r) = self {
            out.push_str(" type=\"");
            out.push_str(&xml_escape(&r.mo_type));
            out.push('"');
        }
        out.push('>');
        match self {
            Self::Str(s) | Self::DateTime(s) | Self::Enum(_, s) => out.push_str(&xml_escape(s)),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => out.push_str(&i.to_string()),
            Self::Long(i) => out.push_str(&i.to_string()),
            Self::MoRef(r) => out.push_str(&xml_escape(&r.value)),
            Self::Data(_, fields) => {
                for (field, value) in fields {
                    value.write_soap(field, out);
                }
            }
            Self::Array(item_type, items) => {
                // Only reached for an array in an anyType position: items named by their type.
                for item in items {
                    item.write_element(item_type, false, out);
                }
            }
            Self::Any(_) | Self::Raw(_) => {}
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

/// Appends the SOAP form of a VI/JSON value as element(s) named `name`: arrays repeat the
/// element, `_typeName` becomes `xsi:type` (`xsd:` for primitives), a reference gets `type`;
/// fields in the order the JSON object keeps them (by name), which vim clients accept.
fn write_raw(name: &str, json: &Json, out: &mut String) {
    let text = match json {
        Json::Null => return,
        Json::Array(items) => {
            for item in items {
                write_raw(name, item, out);
            }
            return;
        }
        Json::Object(map) => {
            let type_name = map.get("_typeName").and_then(Json::as_str);
            out.push('<');
            out.push_str(name);
            if type_name == Some("ManagedObjectReference") {
                let field = |key: &str| map.get(key).and_then(Json::as_str).unwrap_or_default();
                out.push_str(&format!(
                    " type=\"{}\">{}</{name}>",
                    xml_escape(field("type")),
                    xml_escape(field("value"))
                ));
                return;
            }
            if let Some(type_name) = type_name {
                let primitive = map.contains_key("_value")
                    && matches!(
                        type_name,
                        "string"
                            | "boolean"
                            | "int"
                            | "long"
                            | "short"
                            | "byte"
                            | "float"
                            | "double"
                            | "dateTime"
                    );
                let prefix = if primitive { "xsd:" } else { "" };
                out.push_str(&format!(" xsi:type=\"{prefix}{}\"", xml_escape(type_name)));
            }
            out.push('>');
            match map.get("_value") {
                Some(value) => out.push_str(&xml_escape(&scalar_text(value))),
                None => {
                    for (field, value) in map.iter().filter(|(k, _)| !k.starts_with('_')) {
                        write_raw(field, value, out);
                    }
                }
            }
            out.push_str(&format!("</{name}>"));
            return;
        }
        scalar => scalar_text(scalar),
    };
    out.push_str(&format!("<{name}>{}</{name}>", xml_escape(&text)));
}

/// A JSON scalar as XML text.
fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ArrayOfFoo` for item type `Foo` (`string` becomes `ArrayOfString`).
fn array_type_name(item: &str) -> String {
    let mut chars = item.chars();
    match chars.next() {
        Some(first) => format!("ArrayOf{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => "ArrayOfAnyType".into(),
    }
}

/// The current time as RFC 3339 (UTC, microseconds), as vCenter writes `xsd:dateTime`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `time` as RFC 3339 in UTC with microseconds, e.g. `2026-11-23T00:19:31.274149Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_307_971_274_149);
        assert_eq!(rfc3339(t), "2026-11-22T00:39:31.274149Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn any_values_carry_type_names_in_both_protocols() {
        let v = VimValue::str("esx-21").any();
        assert_eq!(
            v.to_json(),
            json!({"_typeName": "string", "_value": "esx-21"})
        );
        let mut out = String::new();
        v.write_soap("returnval", &mut out);
        assert_eq!(
            out,
            r#"<returnval xsi:type="xsd:string">esx-21</returnval>"#
        );

        let views = VimValue::morefs([MoRef::new("HostSystem", "host-21")]).any();
        let mut out = String::new();
        views.write_soap("returnval", &mut out);
        assert_eq!(
            out,
            r#"<returnval xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="HostSystem">host-21</ManagedObjectReference></returnval>"#
        );
        let mut out = String::new();
        VimValue::moref("Task", "task-1")
            .any()
            .write_soap("val", &mut out);
        assert_eq!(
            out,
            r#"<val xsi:type="ManagedObjectReference" type="Task">task-1</val>"#
        );
    }

    #[test]
    fn typed_arrays_repeat_the_field_element() {
        let v = VimValue::Data(
            "Thing",
            vec![(
                "item",
                VimValue::Array("string", vec![VimValue::str("a"), VimValue::str("b<")]),
            )],
        );
        let mut out = String::new();
        v.write_soap("returnval", &mut out);
        assert_eq!(
            out,
            r#"<returnval xsi:type="Thing"><item>a</item><item>b&lt;</item></returnval>"#
        );
        assert_eq!(
            v.to_json(),
            json!({"_typeName": "Thing", "item": ["a", "b<"]})
        );
    }
}
