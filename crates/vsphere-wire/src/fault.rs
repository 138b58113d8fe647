//! vim faults as vCenter and stock SDKs shape them, in both wire protocols.
//!
//! PROTOCOL.md §4: status 500, `faultstring` / `faultMessage` / `details`
//! carry the human text so that pyVmomi, govc, PowerCLI and vim_rs all show it.

use serde_json::{Map, Value, json};

/// The wire protocol a client spoke, which decides how a fault is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultProtocol {
    /// VI/JSON: `application/json` body with `_typeName`.
    Json,
    /// SOAP: `text/xml` envelope with `soapenv:Fault`.
    Soap,
    /// The Automation REST API (`/api`, `/rest`): a vAPI error, `{"error_type", "messages"}`.
    Rest,
    /// Anything else (unknown paths): a plain-text body.
    Plain,
}

/// The vim fault types the gateway answers with itself (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum FaultType {
    /// The request is malformed or ambiguous (`vmodl.fault.InvalidRequest`).
    InvalidRequest,
    /// A parameter has a value that is refused (`vmodl.fault.InvalidArgument`).
    InvalidArgument,
    /// vCenter, or the audit log, cannot be reached (`HostCommunication`).
    HostCommunication,
    /// A policy refused the call (`RestrictedByAdministrator`).
    RestrictedByAdministrator,
    /// The gateway failed itself (`vmodl.fault.SystemError`).
    SystemError,
}

impl FaultType {
    /// The vim type name, as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidArgument => "InvalidArgument",
            Self::HostCommunication => "HostCommunication",
            Self::RestrictedByAdministrator => "RestrictedByAdministrator",
            Self::SystemError => "SystemError",
        }
    }
}

impl std::fmt::Display for FaultType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for FaultType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Content type of a SOAP fault or response.
pub const SOAP_CONTENT_TYPE: &str = "text/xml; charset=utf-8";
/// Content type of a VI/JSON fault or response.
pub const JSON_CONTENT_TYPE: &str = "application/json";

const SOAP_ENVELOPE_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    "\n",
    r#"<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
    "\n<soapenv:Body>"
);
const SOAP_ENVELOPE_CLOSE: &str = "</soapenv:Body>\n</soapenv:Envelope>";

/// A vim fault: its type name, the human text and the type's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct VimFault {
    /// The vim type name, e.g. `RestrictedByAdministrator`.
    pub type_name: String,
    /// Text shown by clients as `faultstring` (and `faultMessage`).
    pub text: String,
    /// Key of the `LocalizableMessage` carried in `faultMessage`, if any.
    pub message_key: Option<String>,
    /// The fault type's own fields, in wire order (scalars only).
    pub fields: Vec<(String, FaultField)>,
}

/// The value of one of a fault type's own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultField {
    /// A string field, e.g. `details`.
    Text(String),
    /// A managed object reference field, e.g. `obj` of `ManagedObjectNotFound`.
    MoRef {
        /// The managed object type, e.g. `HostSystem`.
        mo_type: String,
        /// The managed object id, e.g. `host-21`.
        value: String,
    },
}

impl VimFault {
    /// A fault of `type_name` with `text` and no fields of its own.
    pub fn new(type_name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            text: text.into(),
            message_key: None,
            fields: Vec::new(),
        }
    }

    /// `RestrictedByAdministrator`: the answer to a call a policy refused.
    pub fn restricted_by_administrator(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            type_name: "RestrictedByAdministrator".into(),
            message_key: Some("vcguard.policy.denied".into()),
            fields: vec![("details".into(), FaultField::Text(text.clone()))],
            text,
        }
    }

    /// A gateway-side fault (`InvalidRequest`, `HostCommunication`, ...) with a vcguard message key.
    pub fn gateway(type_name: FaultType, key: &str, text: impl Into<String>) -> Self {
        Self {
            type_name: type_name.as_str().into(),
            text: text.into(),
            message_key: Some(format!("vcguard.{key}")),
            fields: Vec::new(),
        }
    }

    /// Adds one of the fault type's own fields (wire order is call order).
    pub fn with_field(mut self, name: impl Into<String>, value: FaultField) -> Self {
        self.fields.push((name.into(), value));
        self
    }

    /// The VI/JSON body: `{"_typeName": ..., "faultstring", "faultMessage", fields...}`.
    pub fn to_json(&self) -> String {
        let mut body = Map::new();
        body.insert("_typeName".into(), Value::String(self.type_name.clone()));
        body.insert("faultstring".into(), Value::String(self.text.clone()));
        if let Some(key) = &self.message_key {
            body.insert(
                "faultMessage".into(),
                json!([{"_typeName": "LocalizableMessage", "key": key, "message": self.text}]),
            );
        }
        for (name, value) in &self.fields {
            let value = match value {
                FaultField::Text(text) => Value::String(text.clone()),
                FaultField::MoRef { mo_type, value } => {
                    json!({"_typeName": "ManagedObjectReference", "type": mo_type, "value": value})
                }
            };
            body.insert(name.clone(), value);
        }
        Value::Object(body).to_string()
    }

    /// The whole SOAP envelope holding this fault, as vCenter writes it.
    pub fn to_soap(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str(SOAP_ENVELOPE_OPEN);
        out.push_str("<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>");
        out.push_str(&xml_escape(&self.text));
        out.push_str("</faultstring><detail><");
        out.push_str(&self.type_name);
        out.push_str(r#"Fault xmlns="urn:vim25" xsi:type=""#);
        out.push_str(&self.type_name);
        out.push_str(r#"">"#);
        if let Some(key) = &self.message_key {
            out.push_str("<faultMessage><key>");
            out.push_str(&xml_escape(key));
            out.push_str("</key><message>");
            out.push_str(&xml_escape(&self.text));
            out.push_str("</message></faultMessage>");
        }
        for (name, value) in &self.fields {
            match value {
                FaultField::Text(text) => {
                    out.push_str(&format!("<{name}>{}</{name}>", xml_escape(text)));
                }
                FaultField::MoRef { mo_type, value } => out.push_str(&format!(
                    r#"<{name} type="{}">{}</{name}>"#,
                    xml_escape(mo_type),
                    xml_escape(value)
                )),
            }
        }
        out.push_str("</");
        out.push_str(&self.type_name);
        out.push_str("Fault></detail></soapenv:Fault>");
        out.push_str(SOAP_ENVELOPE_CLOSE);
        out
    }

    /// Body and content type for `protocol`.
    pub fn render(&self, protocol: FaultProtocol) -> (String, &'static str) {
        match protocol {
            FaultProtocol::Json => (self.to_json(), JSON_CONTENT_TYPE),
            FaultProtocol::Soap => (self.to_soap(), SOAP_CONTENT_TYPE),
            FaultProtocol::Rest => (self.to_vapi_error(), JSON_CONTENT_TYPE),
            FaultProtocol::Plain => (
                format!("{}: {}\n", self.type_name, self.text),
                "text/plain; charset=utf-8",
            ),
        }
    }

    /// The fault as a vAPI error of the Automation REST API: the vAPI error type that fits the
    /// vim fault, and the text as the message REST clients print (`default_message`).
    pub fn to_vapi_error(&self) -> String {
        let error_type = match self.type_name.as_str() {
            "RestrictedByAdministrator" => "UNAUTHORIZED",
            "InvalidRequest" | "InvalidArgument" => "INVALID_ARGUMENT",
            "HostCommunication" => "SERVICE_UNAVAILABLE",
            _ => "ERROR",
        };
        let id = self.message_key.as_deref().unwrap_or("vcguard.fault");
        json!({
            "error_type": error_type,
            "messages": [{"id": id, "default_message": self.text, "args": []}],
        })
        .to_string()
    }
}

/// Wraps a SOAP body fragment (`<FooResponse ...>...</FooResponse>`) in vCenter's envelope.
pub fn soap_envelope(body: &str) -> String {
    let mut out = String::with_capacity(SOAP_ENVELOPE_OPEN.len() + body.len() + 40);
    out.push_str(SOAP_ENVELOPE_OPEN);
    out.push_str(body);
    out.push_str(SOAP_ENVELOPE_CLOSE);
    out
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_denial_has_every_field_clients_read() {
        let fault =
            VimFault::restricted_by_administrator("Blocked by vcguard policy x (request 1)");
        let body: Value = serde_json::from_str(&fault.to_json()).expect("valid JSON");
        assert_eq!(body["_typeName"], "RestrictedByAdministrator");
        assert_eq!(
            body["faultstring"],
            "Blocked by vcguard policy x (request 1)"
        );
        assert_eq!(body["faultMessage"][0]["key"], "vcguard.policy.denied");
        assert_eq!(body["faultMessage"][0]["message"], body["faultstring"]);
        assert_eq!(body["details"], body["faultstring"]);
    }

    #[test]
    fn soap_denial_matches_protocol_shape_and_escapes() {
        let fault = VimFault::restricted_by_administrator("a < b & \"c\"");
        let xml = fault.to_soap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope"));
        assert!(xml.contains("<faultcode>ServerFaultCode</faultcode><faultstring>a &lt; b &amp; &quot;c&quot;</faultstring>"));
        assert!(xml.contains(r#"<detail><RestrictedByAdministratorFault xmlns="urn:vim25" xsi:type="RestrictedByAdministrator"><faultMessage><key>vcguard.policy.denied</key><message>a &lt; b &amp; &quot;c&quot;</message></faultMessage><details>a &lt; b &amp; &quot;c&quot;</details></RestrictedByAdministratorFault></detail>"#));
        assert!(xml.ends_with("</soapenv:Body>\n</soapenv:Envelope>"));
    }

    #[test]
    fn moref_field_in_both_protocols() {
        let fault = VimFault::new(
            "ManagedObjectNotFound",
            "The object has already been deleted or has not been completely created",
        )
        .with_field(
            "obj",
            FaultField::MoRef {
                mo_type: "HostSystem".into(),
                value: "host-99".into(),
            },
        );
        let body: Value = serde_json::from_str(&fault.to_json()).expect("valid JSON");
        assert_eq!(body["obj"]["value"], "host-99");
        assert!(
            fault
                .to_soap()
                .contains(r#"<obj type="HostSystem">host-99</obj>"#)
        );
    }
}
