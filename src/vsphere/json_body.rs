//! Strict VI/JSON body parsing for guarded and carrier methods (PROTOCOL.md §2, §6).
//!
//! RFC 8259 as `serde_json` reads it, plus what `serde_json` alone lets through:
//! duplicate keys are refused at every depth, numbers must be integers where the
//! API says `int`, enums must be exact strings, unknown fields are refused and
//! `_typeName` is accepted (and ignored) on every object.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::bodies::{
    ChangeLockdownModeBody, EnterMaintenanceModeBody, EvacMode, LOCKDOWN_MODES, LockdownMode,
    MaintenanceSpec, OBJECT_ACTIONS, ObjectAction, VsanMode,
};
use super::effect_tree::Node;
use super::effects::{self, EffectError, EffectMethod};
use super::fault::FaultType;
use super::guarded::{BodyKind, CarrierKind, GuardedMethods, body_kind};
use super::indirect::{self, ActionName, FoundAction, IndirectError, SoapArgument};
use super::operation::{GuardedBody, GuardedCall, MoRef};
use super::schedule::Schedule;

/// Why a VI/JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonBodyError {
    /// Not strict JSON (syntax, duplicate key, trailing data, depth).
    #[error("{detail} in {context}")]
    Json {
        /// Which body.
        context: String,
        /// `serde_json`'s description, with line and column.
        detail: String,
    },
    /// The body (or a nested value) is not an object.
    #[error("{context} must be a JSON object")]
    NotObject {
        /// Which body or field.
        context: String,
    },
    /// A field the method does not take.
    #[error("unknown field '{field}' in {context}")]
    UnknownField {
        /// The field.
        field: String,
        /// Where.
        context: String,
    },
    /// A required field is absent.
    #[error("missing required field '{field}' in {context}")]
    MissingField {
        /// The field.
        field: &'static str,
        /// Where.
        context: String,
    },
    /// A field has the wrong JSON type (or is `null`).
    #[error("field '{field}' in {context} must be {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// Where.
        context: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An enum value outside the set.
    #[error("'{value}' is not a valid {field} in {context}; expected one of: {allowed}")]
    BadEnum {
        /// The field.
        field: &'static str,
        /// Where.
        context: String,
        /// As sent.
        value: String,
        /// The wire strings allowed.
        allowed: &'static str,
    },
    /// An integer outside the int32 range.
    #[error("{field} {value} in {context} is outside the int32 range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Where.
        context: String,
        /// As sent.
        value: String,
    },
    /// A carrier body reaches a guarded method in a way that is refused.
    #[error(transparent)]
    Indirect(#[from] IndirectError),
    /// An effect method's parameters are refused.
    #[error(transparent)]
    Effect(#[from] EffectError),
}

impl JsonBodyError {
    /// The vim fault type a client should get: `InvalidRequest` or `InvalidArgument`.
    pub fn fault_type(&self) -> FaultType {
        match self {
            Self::Json { .. } | Self::NotObject { .. } | Self::Indirect(_) => {
                FaultType::InvalidRequest
            }
            _ => FaultType::InvalidArgument,
        }
    }
}

/// A JSON value parsed with duplicate keys refused at any depth.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key '{key}'")));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(StrictValue(Value::Object(map)))
    }
}

/// Parses strict JSON: RFC 8259, no duplicate keys at any depth, no trailing data.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|StrictValue(v)| v)
}

/// Parses a body into its top-level object; no body (zero bytes) is an empty object.
fn body_object(body: Option<&[u8]>, context: &str) -> Result<Map<String, Value>, JsonBodyError> {
    let bytes = match body {
        None | Some(b"") => return Ok(Map::new()),
        Some(bytes) => bytes,
    };
    match parse_strict(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonBodyError::NotObject {
            context: context.to_owned(),
        }),
        Err(err) => Err(JsonBodyError::Json {
            context: context.to_owned(),
            detail: err.to_string(),
        }),
    }
}

/// Parses the body of a guarded method (canonical name) into its typed form.
pub fn parse_guarded_body(method: &str, body: Option<&[u8]>) -> Result<GuardedBody, JsonBodyError> {
    let context = format!("{method} body");
    let map = body_object(body, &context)?;
    guarded_body_from_map(body_kind(method), &map, &context)
}

fn guarded_body_from_map(
    kind: BodyKind,
    map: &Map<String, Value>,
    context: &str,
) -> Result<GuardedBody, JsonBodyError> {
    let fields = Fields::new(map, context);
    Ok(match kind {
        BodyKind::EnterMaintenanceMode => {
            GuardedBody::EnterMaintenanceMode(enter_maintenance_mode(&fields)?)
        }
        BodyKind::ChangeLockdownMode => {
            GuardedBody::ChangeLockdownMode(change_lockdown_mode(&fields)?)
        }
        BodyKind::NoParameters => {
            fields.only(&[])?;
            GuardedBody::NoParameters
        }
        BodyKind::Untyped => GuardedBody::Untyped,
    })
}

/// Classifies the body of an effect method (PROTOCOL.md §8); `Some` when it is guarded.
pub fn parse_effect_body(
    method: EffectMethod,
    this: &MoRef,
    declared: bool,
    body: Option<&[u8]>,
) -> Result<Option<GuardedCall>, JsonBodyError> {
    let context = format!("{} body", method.wire_name());
    let map = body_object(body, &context)?;
    let params = Node::from_json_params(&map, &context).map_err(EffectError::from)?;
    Ok(effects::classify_effect(method, this, &params, declared)?)
}

/// Field access on one JSON object, with the refusals of §6.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    context: &'a str,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>, context: &'a str) -> Self {
        Self { map, context }
    }

    /// Refuses keys outside `known`; `_typeName` is allowed everywhere but must be a string.
    fn only(&self, known: &[&str]) -> Result<(), JsonBodyError> {
        for (key, value) in self.map {
            if key == "_typeName" {
                if !value.is_string() {
                    return Err(self.wrong_type(key, "a string"));
                }
            } else if !known.contains(&key.as_str()) {
                return Err(JsonBodyError::UnknownField {
                    field: key.clone(),
                    context: self.context.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn wrong_type(&self, field: &str, expected: &'static str) -> JsonBodyError {
        JsonBodyError::WrongType {
            field: field.to_owned(),
            context: self.context.to_owned(),
            expected,
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    fn int32(&self, field: &'static str) -> Result<Option<i32>, JsonBodyError> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let Value::Number(n) = value else {
            return Err(self.wrong_type(field, "an integer"));
        };
        if n.is_f64() {
            return Err(self.wrong_type(field, "an integer (no fraction or exponent)"));
        }
        n.as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| JsonBodyError::OutOfRange {
                field,
                context: self.context.to_owned(),
                value: n.to_string(),
            })
    }

    fn bool(&self, field: &'static str) -> Result<Option<bool>, JsonBodyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(field, "true or false")),
        }
    }

    fn string(&self, field: &'static str) -> Result<Option<&'a str>, JsonBodyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(field, "a string")),
        }
    }

    fn object(&self, field: &'static str) -> Result<Option<&'a Map<String, Value>>, JsonBodyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(self.wrong_type(field, "an object")),
        }
    }

    fn array(&self, field: &'static str) -> Result<&'a [Value], JsonBodyError> {
        match self.get(field) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.wrong_type(field, "an array")),
        }
    }

    fn enum_value<T>(
        &self,
        field: &'static str,
        allowed: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Option<T>, JsonBodyError> {
        let Some(text) = self.string(field).map_err(|_| {
            self.wrong_type(field, "a plain string (boxed enums are not accepted here)")
        })?
        else {
            return Ok(None);
        };
        parse(text).map(Some).ok_or_else(|| JsonBodyError::BadEnum {
            field,
            context: self.context.to_owned(),
            value: text.to_owned(),
            allowed,
        })
    }

    fn required<T>(&self, field: &'static str, value: Option<T>) -> Result<T, JsonBodyError> {
        value.ok_or_else(|| JsonBodyError::MissingField {
            field,
            context: self.context.to_owned(),
        })
    }
}

fn enter_maintenance_mode(fields: &Fields<'_>) -> Result<EnterMaintenanceModeBody, JsonBodyError> {
    fields.only(&["timeout", "evacuatePoweredOffVms", "maintenanceSpec"])?;
    let timeout = fields.required("timeout", fields.int32("timeout")?)?;
    let evacuate_powered_off_vms = fields.bool("evacuatePoweredOffVms")?;
    let maintenance_spec = fields
        .object("maintenanceSpec")?
        .map(maintenance_spec)
        .transpose()?;
    Ok(EnterMaintenanceModeBody {
        timeout,
        evacuate_powered_off_vms,
        maintenance_spec,
    })
}

fn maintenance_spec(map: &Map<String, Value>) -> Result<MaintenanceSpec, JsonBodyError> {
    let fields = Fields::new(map, "maintenanceSpec");
    fields.only(&["vsanMode", "purpose", "evacMode"])?;
    let vsan_mode = match fields.object("vsanMode")? {
        Some(map) => {
            let fields = Fields::new(map, "maintenanceSpec.vsanMode");
            fields.only(&["objectAction"])?;
            Some(VsanMode {
                object_action: fields.enum_value(
                    "objectAction",
                    OBJECT_ACTIONS,
                    ObjectAction::from_wire,
                )?,
            })
        }
        None => None,
    };
    let evac_mode = match fields.object("evacMode")? {
        Some(map) => {
            let fields = Fields::new(map, "maintenanceSpec.evacMode");
            fields.only(&["workloadNonDisruptive"])?;
            Some(EvacMode {
                workload_non_disruptive: fields.bool("workloadNonDisruptive")?,
            })
        }
        None => None,
    };
    Ok(MaintenanceSpec {
        vsan_mode,
        purpose: fields.string("purpose")?.map(str::to_owned),
        evac_mode,
    })
}

fn change_lockdown_mode(fields: &Fields<'_>) -> Result<ChangeLockdownModeBody, JsonBodyError> {
    fields.only(&["mode"])?;
    let mode = fields.enum_value("mode", LOCKDOWN_MODES, LockdownMode::from_wire)?;
    Ok(ChangeLockdownModeBody {
        mode: fields.required("mode", mode)?,
    })
}

/// Parses a carrier's body and resolves the guarded call it reaches, if any.
///
/// `this` is the object from the path; `guarded_itself` says the operator also
/// guards the carrier call itself.
pub fn parse_carrier_body(
    carrier: &str,
    kind: CarrierKind,
    this: &MoRef,
    guarded_itself: bool,
    body: Option<&[u8]>,
    guarded: &GuardedMethods,
) -> Result<Option<GuardedCall>, JsonBodyError> {
    let context = format!("{carrier} body");
    let map = body_object(body, &context)?;
    let fields = Fields::new(&map, &context);
    match kind {
        CarrierKind::ExecuteSoap => {
            fields.only(&["moid", "version", "method", "argument"])?;
            let moid = fields.required("moid", fields.string("moid")?)?;
            let method = fields.required("method", fields.string("method")?)?;
            fields.string("version")?;
            let mut arguments = Vec::new();
            for item in fields.array("argument")? {
                let Value::Object(arg) = item else {
                    return Err(JsonBodyError::NotObject {
                        context: "ExecuteSoap argument".into(),
                    });
                };
                let arg = Fields::new(arg, "ExecuteSoap argument");
                arg.only(&["name", "val"])?;
                arguments.push(SoapArgument {
                    name: arg.required("name", arg.string("name")?)?.to_owned(),
                    val: arg.required("val", arg.string("val")?)?.to_owned(),
                });
            }
            let call = indirect::execute_soap_call(this, moid, method, &arguments, guarded)?;
            Ok(match call {
                Some(call) => Some(call),
                None if guarded_itself => Some(indirect::carrier_itself(carrier, this)),
                None => None,
            })
        }
        CarrierKind::ScheduledTask { target_param } | CarrierKind::Alarm { target_param } => {
            let target = match target_param {
                Some(param) => fields
                    .object(param)?
                    .map(|m| mo_ref(m, param))
                    .transpose()?,
                None => None,
            };
            let mut found = Vec::new();
            for (key, value) in &map {
                if Some(key.as_str()) != target_param {
                    walk(value, carrier, guarded, &mut found)?;
                }
            }
            let schedule = match (kind, map.get("spec")) {
                (CarrierKind::ScheduledTask { .. }, Some(Value::Object(spec))) => {
                    let spec = Node::from_json_params(spec, "spec").map_err(EffectError::from)?;
                    Some(Schedule::from_spec(Some(&spec), unix_now()))
                }
                _ => None,
            };
            Ok(indirect::carrier_call(
                carrier,
                kind,
                this,
                target,
                guarded_itself,
                schedule,
                found,
            )?)
        }
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A `ManagedObjectReference` object: `type` and `value` strings.
fn mo_ref(map: &Map<String, Value>, context: &str) -> Result<MoRef, JsonBodyError> {
    let fields = Fields::new(map, context);
    fields.only(&["type", "value"])?;
    Ok(MoRef::new(
        fields.required("type", fields.string("type")?)?,
        fields.required("value", fields.string("value")?)?,
    ))
}

/// Looks for `MethodAction`s and for guarded names anywhere else in a carrier body.
fn walk(
    value: &Value,
    carrier: &str,
    guarded: &GuardedMethods,
    found: &mut Vec<FoundAction>,
) -> Result<(), JsonBodyError> {
    match value {
        Value::Object(map) => {
            let is_action = map
                .get("_typeName")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("MethodAction"));
            if is_action {
                return method_action(map, carrier, guarded, found);
            }
            for item in map.values() {
                walk(item, carrier, guarded, found)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, carrier, guarded, found)?;
            }
        }
        Value::String(text) => indirect::check_stray_text(carrier, text, guarded)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn method_action(
    map: &Map<String, Value>,
    carrier: &str,
    guarded: &GuardedMethods,
    found: &mut Vec<FoundAction>,
) -> Result<(), JsonBodyError> {
    let fields = Fields::new(map, "MethodAction");
    fields.only(&["name", "argument"])?;
    let name = fields.required("name", fields.string("name")?)?;
    let mut values = Vec::new();
    for item in fields.array("argument")? {
        let Value::Object(arg) = item else {
            return Err(JsonBodyError::NotObject {
                context: "MethodActionArgument".into(),
            });
        };
        let arg = Fields::new(arg, "MethodActionArgument");
        arg.only(&["value"])?;
        let value = arg.get("value");
        if let Some(value) = value {
            walk(value, carrier, guarded, found)?;
        }
        values.push(value);
    }
    match indirect::method_action_name(carrier, name, guarded)? {
        ActionName::Unguarded => {}
        ActionName::Guarded(method) => found.push(FoundAction {
            method: method.to_owned(),
            body: action_body(body_kind(method), &values),
        }),
        ActionName::Effect { method, declared } => {
            let nodes = values
                .iter()
                .map(|v| match v {
                    Some(Value::Object(map)) => Node::from_json_params(map, "MethodActionArgument")
                        .ok()
                        .map(Some),
                    Some(Value::Null) | None => Some(None),
                    Some(_) => None,
                })
                .collect::<Option<Vec<_>>>();
            found.extend(match nodes {
                Some(nodes) => indirect::effect_action(method, declared, nodes),
                None => indirect::effect_action(method, declared, vec![None; 99]),
            });
        }
    }
    Ok(())
}

/// Maps `MethodActionArgument` values (boxed `anyType`s) to a typed body, else `Untyped`.
fn action_body(kind: BodyKind, values: &[Option<&Value>]) -> GuardedBody {
    let arg = |i: usize| values.get(i).copied().flatten();
    let typed = match kind {
        BodyKind::EnterMaintenanceMode if values.len() <= 3 => (|| {
            let timeout = i32::try_from(boxed(arg(0)?, "int")?.as_i64()?).ok()?;
            let evacuate_powered_off_vms = match arg(1) {
                Some(v) => Some(boxed(v, "boolean")?.as_bool()?),
                None => None,
            };
            let maintenance_spec = match arg(2) {
                Some(Value::Object(map)) => Some(maintenance_spec(map).ok()?),
                Some(_) => return None,
                None => None,
            };
            Some(GuardedBody::EnterMaintenanceMode(
                EnterMaintenanceModeBody {
                    timeout,
                    evacuate_powered_off_vms,
                    maintenance_spec,
                },
            ))
        })(),
        BodyKind::ChangeLockdownMode if values.len() == 1 => arg(0)
            .and_then(|v| boxed(v, "HostLockdownMode"))
            .and_then(Value::as_str)
            .and_then(LockdownMode::from_wire)
            .map(|mode| GuardedBody::ChangeLockdownMode(ChangeLockdownModeBody { mode })),
        BodyKind::NoParameters if values.iter().all(Option::is_none) => {
            Some(GuardedBody::NoParameters)
        }
        _ => None,
    };
    typed.unwrap_or(GuardedBody::Untyped)
}

/// The `_value` of a boxed `anyType` `{"_typeName": type_name, "_value": ...}`.
fn boxed<'v>(value: &'v Value, type_name: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    if map.len() != 2 || map.get("_typeName")?.as_str()? != type_name {
        return None;
    }
    map.get("_value").filter(|inner| !inner.is_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::operation::Route;

    fn lockdown(body: &str) -> Result<GuardedBody, JsonBodyError> {
        parse_guarded_body("ChangeLockdownMode", Some(body.as_bytes()))
    }

    fn maintenance(body: &str) -> Result<GuardedBody, JsonBodyError> {
        parse_guarded_body("EnterMaintenanceMode_Task", Some(body.as_bytes()))
    }

    fn mode(body: &str) -> LockdownMode {
        match lockdown(body) {
            Ok(GuardedBody::ChangeLockdownMode(b)) => b.mode,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn protocol_examples_parse() {
        let body = maintenance(
            r#"{"_typeName":"EnterMaintenanceModeRequestType","timeout":300,
 "evacuatePoweredOffVms":true,
 "maintenanceSpec":{"_typeName":"HostMaintenanceSpec",
   "vsanMode":{"_typeName":"VsanHostDecommissionMode","objectAction":"ensureObjectAccessibility"},
   "purpose":"hostUpgrade"}}"#,
        )
        .expect("parses");
        assert_eq!(
            body,
            GuardedBody::EnterMaintenanceMode(EnterMaintenanceModeBody {
                timeout: 300,
                evacuate_powered_off_vms: Some(true),
                maintenance_spec: Some(MaintenanceSpec {
                    vsan_mode: Some(VsanMode {
                        object_action: Some(ObjectAction::EnsureObjectAccessibility)
                    }),
                    purpose: Some("hostUpgrade".into()),
                    evac_mode: None,
                }),
            })
        );
        assert_eq!(
            mode(r#"{"_typeName":"ChangeLockdownModeRequestType","mode":"lockdownStrict"}"#),
            LockdownMode::Strict
        );
        assert_eq!(
            mode(r#"{"_typeName":"ChangeLockdownMode","mode":"lockdownNormal"}"#),
            LockdownMode::Normal
        );
        assert_eq!(
            mode(r#"{"mode":"lockdownDisabled"}"#),
            LockdownMode::Disabled
        );
    }

    #[test]
    fn evac_mode_from_9_1() {
        let body = maintenance(
            r#"{"timeout":0,"maintenanceSpec":{"evacMode":{"_typeName":"HostMaintenanceSpecEvacMode","workloadNonDisruptive":true}}}"#,
        )
        .expect("parses");
        let GuardedBody::EnterMaintenanceMode(body) = body else {
            panic!("typed")
        };
        assert_eq!(
            body.maintenance_spec
                .and_then(|s| s.evac_mode)
                .and_then(|e| e.workload_non_disruptive),
            Some(true)
        );
    }

    #[test]
    fn unicode_escapes_decode_to_the_real_value() {
        assert_eq!(
            mode(r#"{"mode":"lockdown\u0053trict"}"#),
            LockdownMode::Strict
        );
        assert_eq!(
            mode(r#"{"mo\u0064e":"lockdownStrict"}"#),
            LockdownMode::Strict
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let err = lockdown(r#"{"mode":"lockdownNormal","mode":"lockdownStrict"}"#)
            .expect_err("duplicate");
        assert!(
            err.to_string().starts_with("duplicate key 'mode'")
                && err.to_string().ends_with("in ChangeLockdownMode body"),
            "{err}"
        );
        let err = lockdown(r#"{"mode":"lockdownNormal","mo\u0064e":"lockdownStrict"}"#)
            .expect_err("escaped duplicate");
        assert!(err.to_string().contains("duplicate key 'mode'"), "{err}");
        let err = maintenance(
            r#"{"timeout":1,"maintenanceSpec":{"vsanMode":{"objectAction":"noAction","objectAction":"evacuateAllData"}}}"#,
        )
        .expect_err("nested duplicate");
        assert!(
            err.to_string().contains("duplicate key 'objectAction'"),
            "{err}"
        );
        let err = maintenance(r#"{"timeout":1,"maintenanceSpec":{"purpose":"a","purpose":"b"}}"#)
            .expect_err("nested duplicate");
        assert!(err.to_string().contains("duplicate key 'purpose'"), "{err}");
        let err = maintenance(r#"{"timeout":1,"timeout":2}"#).expect_err("duplicate");
        assert!(err.to_string().contains("duplicate key 'timeout'"), "{err}");
        let err =
            maintenance(r#"{"timeout":1,"_typeName":"a","_typeName":"b"}"#).expect_err("duplicate");
        assert!(
            err.to_string().contains("duplicate key '_typeName'"),
            "{err}"
        );
    }

    #[test]
    fn timeout_only_as_int32() {
        for (body, expected) in [
            (r#"{"timeout":300.0}"#, "must be an integer"),
            (r#"{"timeout":3e2}"#, "must be an integer"),
            (r#"{"timeout":"300"}"#, "must be an integer"),
            (r#"{"timeout":null}"#, "must be an integer"),
            (r#"{"timeout":2147483648}"#, "outside the int32 range"),
            (r#"{"timeout":-2147483649}"#, "outside the int32 range"),
            (r#"{"timeout":18446744073709551616}"#, "must be an integer"),
            (r#"{}"#, "missing required field 'timeout'"),
        ] {
            let err = maintenance(body).expect_err(body);
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
        assert!(maintenance(r#"{"timeout":-2147483648}"#).is_ok());
        // serde_json reads `-0` as a float: refused, which is harmless.
        assert!(maintenance(r#"{"timeout":-0}"#).is_err());
    }

    #[test]
    fn enums_only_as_exact_strings() {
        for body in [
            r#"{"mode":{"_typeName":"HostLockdownMode","_value":"lockdownStrict"}}"#,
            r#"{"mode":"LockdownStrict"}"#,
            r#"{"mode":"lockdownstrict"}"#,
            r#"{"mode":" lockdownStrict"}"#,
            r#"{"mode":"lockdownStrict\u0000"}"#,
            r#"{"mode":["lockdownStrict"]}"#,
            r#"{"mode":2}"#,
            r#"{"mode":null}"#,
            r#"{}"#,
        ] {
            assert!(lockdown(body).is_err(), "{body}");
        }
        let err = lockdown(r#"{"mode":"lockdownstrict"}"#).expect_err("case");
        assert_eq!(
            err.to_string(),
            "'lockdownstrict' is not a valid mode in ChangeLockdownMode body; expected one of: lockdownDisabled, lockdownNormal, lockdownStrict"
        );
    }

    #[test]
    fn structure_is_strict() {
        for body in [
            r#"{"mode":"lockdownStrict","force":true}"#,
            r#"{"mode":"lockdownStrict"} x"#,
            r#"{"mode":"lockdownStrict"}{}"#,
            r#"["lockdownStrict"]"#,
            r#"null"#,
            r#"{"mode":"lockdownStrict",}"#,
            "\u{feff}{\"mode\":\"lockdownStrict\"}",
            r#"{'mode':'lockdownStrict'}"#,
            r#"{"_typeName":5,"mode":"lockdownStrict"}"#,
            r#"{"mode":"lockdownStrict" /* c */}"#,
        ] {
            assert!(lockdown(body).is_err(), "{body}");
        }
        assert!(lockdown(" {\"mode\":\"lockdownStrict\"}\n").is_ok());
        let err = maintenance(
            r#"{"timeout":1,"maintenanceSpec":{"vsanMode":{"objectAction":"noAction","x":1}}}"#,
        )
        .expect_err("unknown nested");
        assert_eq!(
            err.to_string(),
            "unknown field 'x' in maintenanceSpec.vsanMode"
        );
        assert_eq!(err.fault_type(), "InvalidArgument");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "{{\"timeout\":1,\"x\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(maintenance(&deep).is_err());
    }

    #[test]
    fn no_parameter_methods() {
        for body in [
            None,
            Some(&b""[..]),
            Some(b"{}"),
            Some(br#"{"_typeName":"EnterLockdownModeRequestType"}"#),
        ] {
            assert_eq!(
                parse_guarded_body("EnterLockdownMode", body),
                Ok(GuardedBody::NoParameters)
            );
        }
        assert!(parse_guarded_body("ExitLockdownMode", Some(br#"{"x":1}"#)).is_err());
        assert!(parse_guarded_body("ExitLockdownMode", Some(b" ")).is_err());
        assert_eq!(
            parse_guarded_body("RebootHost_Task", Some(br#"{"force":true}"#)),
            Ok(GuardedBody::Untyped)
        );
        assert!(
            parse_guarded_body("RebootHost_Task", Some(br#"{"force":true,"force":false}"#))
                .is_err()
        );
        assert!(parse_guarded_body("RebootHost_Task", Some(br#"[1]"#)).is_err());
    }

    fn carrier(
        name: &str,
        kind: CarrierKind,
        this: MoRef,
        body: &str,
    ) -> Result<Option<GuardedCall>, JsonBodyError> {
        parse_carrier_body(
            name,
            kind,
            &this,
            false,
            Some(body.as_bytes()),
            &GuardedMethods::new(),
        )
    }

    const SCHEDULED: CarrierKind = CarrierKind::ScheduledTask {
        target_param: Some("obj"),
    };

    #[test]
    fn scheduled_task_with_method_action_is_the_guarded_call() {
        let body = r#"{"_typeName":"CreateScheduledTaskRequestType",
          "obj":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-42"},
          "spec":{"_typeName":"ScheduledTaskSpec","name":"mm","description":"","enabled":true,
            "scheduler":{"_typeName":"OnceTaskScheduler","runAt":"2030-01-01T00:00:00Z"},
            "action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task","argument":[
              {"_typeName":"MethodActionArgument","value":{"_typeName":"int","_value":300}},
              {"_typeName":"MethodActionArgument","value":{"_typeName":"boolean","_value":true}},
              {"_typeName":"MethodActionArgument"}]}}}"#;
        let call = carrier(
            "CreateScheduledTask",
            SCHEDULED,
            MoRef::new("ScheduledTaskManager", "ScheduledTaskManager"),
            body,
        )
        .expect("parses")
        .expect("guarded");
        assert_eq!(call.method, "EnterMaintenanceMode_Task");
        assert_eq!(call.target, MoRef::new("HostSystem", "host-42"));
        assert_eq!(
            call.route,
            Route::ScheduledTask {
                carrier: "CreateScheduledTask".into(),
                schedule: crate::vsphere::schedule::Schedule {
                    scheduler: "OnceTaskScheduler".into(),
                    recurring: false,
                    unbounded: false,
                    first_run: Some(1_893_456_000),
                    last_run: Some(1_893_456_000),
                },
            }
        );
        assert_eq!(
            call.body,
            GuardedBody::EnterMaintenanceMode(EnterMaintenanceModeBody {
                timeout: 300,
                evacuate_powered_off_vms: Some(true),
                maintenance_spec: None
            })
        );
    }

    #[test]
    fn scheduled_lockdown_maps_boxed_mode_or_stays_untyped() {
        let make = |value: &str| {
            format!(
                r#"{{"obj":{{"type":"HostAccessManager","value":"ham-1"}},"spec":{{"action":{{"_typeName":"MethodAction","name":"ChangeLockdownMode","argument":[{{"value":{value}}}]}}}}}}"#
            )
        };
        let call = |value: &str| {
            carrier(
                "CreateObjectScheduledTask",
                SCHEDULED,
                MoRef::new("ScheduledTaskManager", "ScheduledTaskManager"),
                &make(value),
            )
            .expect("parses")
            .expect("guarded")
        };
        assert_eq!(
            call(r#"{"_typeName":"HostLockdownMode","_value":"lockdownStrict"}"#).body,
            GuardedBody::ChangeLockdownMode(ChangeLockdownModeBody {
                mode: LockdownMode::Strict
            })
        );
        assert_eq!(call(r#""lockdownStrict""#).body, GuardedBody::Untyped);
    }

    #[test]
    fn carrier_refusals() {
        let this = || MoRef::new("ScheduledTaskManager", "ScheduledTaskManager");
        let odd = r#"{"obj":{"type":"HostSystem","value":"host-1"},"spec":{"action":{"_typeName":"MethodAction","name":"entermaintenancemode_task"}}}"#;
        let err = carrier("CreateScheduledTask", SCHEDULED, this(), odd).expect_err("odd case");
        assert!(
            err.to_string()
                .contains("must be spelled EnterMaintenanceMode_Task"),
            "{err}"
        );
        let two = r#"{"obj":{"type":"HostSystem","value":"host-1"},"spec":{"action":{"_typeName":"GroupAlarmAction","action":[
            {"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task"},{"_typeName":"MethodAction","name":"EnterLockdownMode"}]}}}"#;
        assert!(carrier("CreateScheduledTask", SCHEDULED, this(), two).is_err());
        let stray = r#"{"obj":{"type":"HostSystem","value":"host-1"},"spec":{"action":{"_typeName":"methodAction2","name":"EnterMaintenanceMode_Task"}}}"#;
        let err = carrier("CreateScheduledTask", SCHEDULED, this(), stray).expect_err("stray");
        assert!(err.to_string().contains("outside a MethodAction"), "{err}");
        let nested = r#"{"obj":{"type":"HostSystem","value":"host-1"},"spec":{"action":{"_typeName":"MethodAction","name":"vim.scheduler.ScheduledTaskManager.create"}}}"#;
        assert!(carrier("CreateScheduledTask", SCHEDULED, this(), nested).is_err());
        let no_obj = r#"{"spec":{"action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task"}}}"#;
        assert!(carrier("CreateScheduledTask", SCHEDULED, this(), no_obj).is_err());
        let dup = r#"{"obj":{"type":"HostSystem","value":"host-1"},"obj":{"type":"HostSystem","value":"host-2"},"spec":{}}"#;
        assert!(carrier("CreateScheduledTask", SCHEDULED, this(), dup).is_err());
        let wrong_type = r#"{"obj":{"type":"Folder","value":"host-1"},"spec":{"action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task"}}}"#;
        assert!(carrier("CreateScheduledTask", SCHEDULED, this(), wrong_type).is_err());
    }

    #[test]
    fn unguarded_scheduled_task_passes() {
        let body = r#"{"obj":{"type":"VirtualMachine","value":"vm-1"},"spec":{"name":"on","action":{"_typeName":"MethodAction","name":"PowerOnVM_Task"}}}"#;
        assert_eq!(
            carrier(
                "CreateScheduledTask",
                SCHEDULED,
                MoRef::new("ScheduledTaskManager", "ScheduledTaskManager"),
                body
            ),
            Ok(None)
        );
    }

    #[test]
    fn alarm_method_action_targets_the_entity() {
        let body = r#"{"entity":{"type":"ClusterComputeResource","value":"domain-c7"},"spec":{"_typeName":"AlarmSpec","name":"a","action":
          {"_typeName":"AlarmTriggeringAction","action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task","argument":[{"value":{"_typeName":"int","_value":0}}]}}}}"#;
        let call = carrier(
            "CreateAlarm",
            CarrierKind::Alarm {
                target_param: Some("entity"),
            },
            MoRef::new("AlarmManager", "AlarmManager"),
            body,
        )
        .expect("parses")
        .expect("guarded");
        assert_eq!(
            call.target,
            MoRef::new("ClusterComputeResource", "domain-c7")
        );
        assert_eq!(
            call.route,
            Route::Alarm {
                carrier: "CreateAlarm".into()
            }
        );
    }

    #[test]
    fn execute_soap_in_json() {
        let body = r#"{"moid":"ha-cli-handler-system-maintenancemode","version":"urn:vim25/5.0","method":"vim.EsxCLI.system.maintenanceMode.set",
            "argument":[{"name":"enable","val":"<enable>true</enable>"},{"name":"timeout","val":"<timeout>60</timeout>"}]}"#;
        let call = carrier(
            "ExecuteSoap",
            CarrierKind::ExecuteSoap,
            MoRef::new("ReflectManagedMethodExecuter", "ha-mme"),
            body,
        )
        .expect("parses")
        .expect("guarded");
        assert_eq!(call.method, "EnterMaintenanceMode_Task");
        assert_eq!(
            call.body,
            GuardedBody::EnterMaintenanceMode(EnterMaintenanceModeBody {
                timeout: 60,
                evacuate_powered_off_vms: None,
                maintenance_spec: None
            })
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn ws() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![Just(" "), Just("\t"), Just("\n"), Just("\r")],
            0..3,
        )
        .prop_map(|v| v.concat())
    }

    /// A JSON string literal for `text`, each char randomly written raw or as `\uXXXX`.
    fn string_literal(text: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), text.chars().count()).prop_map(move |escape| {
            let mut out = String::from("\"");
            for (c, e) in text.chars().zip(escape) {
                if e {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                } else {
                    out.push(c);
                }
            }
            out.push('"');
            out
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_guarded_body("ChangeLockdownMode", Some(&bytes));
            let _ = parse_guarded_body("EnterMaintenanceMode_Task", Some(&bytes));
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[\{\}\[\]":,a-zA-Z0-9_ .eE+\-\\u]{0,80}"#) {
            let _ = parse_guarded_body("EnterMaintenanceMode_Task", Some(s.as_bytes()));
            let _ = parse_carrier_body("CreateScheduledTask", CarrierKind::ScheduledTask { target_param: Some("obj") },
                &MoRef::new("ScheduledTaskManager", "x"), false, Some(s.as_bytes()), &GuardedMethods::new());
        }

        #[test]
        fn key_order_and_whitespace_do_not_change_the_mode(
            mode_index in 0usize..3,
            type_first in any::<bool>(),
            with_type in any::<bool>(),
            w in prop::collection::vec(ws(), 8),
            key in string_literal("mode"),
            type_key in string_literal("_typeName"),
            modes in (string_literal("lockdownDisabled"), string_literal("lockdownNormal"), string_literal("lockdownStrict")),
        ) {
            let expected = [LockdownMode::Disabled, LockdownMode::Normal, LockdownMode::Strict][mode_index];
            let value = [&modes.0, &modes.1, &modes.2][mode_index];
            let mode_member = format!("{}{key}{}:{}{value}{}", w[0], w[1], w[2], w[3]);
            let type_member = format!("{}{type_key}{}:{}\"ChangeLockdownModeRequestType\"{}", w[4], w[5], w[6], w[7]);
            let members = match (with_type, type_first) {
                (false, _) => mode_member,
                (true, true) => format!("{type_member},{mode_member}"),
                (true, false) => format!("{mode_member},{type_member}"),
            };
            let body = format!("{}{{{members}}}{}", w[7], w[0]);
            let parsed = parse_guarded_body("ChangeLockdownMode", Some(body.as_bytes()));
            prop_assert_eq!(
                parsed,
                Ok(GuardedBody::ChangeLockdownMode(ChangeLockdownModeBody { mode: expected })),
                "{}", body
            );
        }
    }
}
