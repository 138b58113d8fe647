//! Typed bodies of the guarded vim methods, the same Rust types for VI/JSON and SOAP.
//!
//! Field names serialise as the vim wire names (`evacuatePoweredOffVms`), enums as
//! their wire strings (`lockdownStrict`), and unset optional fields are left out, so
//! the audit log and the Cedar context read like the vSphere API reference.

use serde::Serialize;

/// Parameters of `HostSystem.EnterMaintenanceMode_Task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterMaintenanceModeBody {
    /// Seconds to wait; `<= 0` means no timeout.
    pub timeout: i32,
    /// Whether powered-off VMs must be evacuated too (vCenter only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evacuate_powered_off_vms: Option<bool>,
    /// `HostMaintenanceSpec`: actions taken on entering maintenance mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_spec: Option<MaintenanceSpec>,
}

/// `HostMaintenanceSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// `VsanHostDecommissionMode`: what happens to vSAN data on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsan_mode: Option<VsanMode>,
    /// Free-form purpose, e.g. `hostUpgrade`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// `HostMaintenanceSpecEvacMode` (vSphere 9.1 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evac_mode: Option<EvacMode>,
}

/// `VsanHostDecommissionMode`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VsanMode {
    /// The vSAN object action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_action: Option<ObjectAction>,
}

/// `HostMaintenanceSpecEvacMode`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvacMode {
    /// Whether workloads must be evacuated without disruption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_non_disruptive: Option<bool>,
}

/// Parameters of `HostAccessManager.ChangeLockdownMode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeLockdownModeBody {
    /// The requested lockdown mode.
    pub mode: LockdownMode,
}

/// `HostLockdownMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LockdownMode {
    /// `lockdownDisabled`.
    #[serde(rename = "lockdownDisabled")]
    Disabled,
    /// `lockdownNormal`: lockdown with the DCUI running.
    #[serde(rename = "lockdownNormal")]
    Normal,
    /// `lockdownStrict`: lockdown with the DCUI stopped (no emergency way back).
    #[serde(rename = "lockdownStrict")]
    Strict,
}

/// `VsanHostDecommissionModeObjectAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ObjectAction {
    /// `noAction`.
    #[serde(rename = "noAction")]
    NoAction,
    /// `ensureObjectAccessibility`.
    #[serde(rename = "ensureObjectAccessibility")]
    EnsureObjectAccessibility,
    /// `evacuateAllData`.
    #[serde(rename = "evacuateAllData")]
    EvacuateAllData,
}

/// Wire strings of [`LockdownMode`], in declaration order.
pub const LOCKDOWN_MODES: &str = "lockdownDisabled, lockdownNormal, lockdownStrict";
/// Wire strings of [`ObjectAction`], in declaration order.
pub const OBJECT_ACTIONS: &str = "noAction, ensureObjectAccessibility, evacuateAllData";

impl LockdownMode {
    /// The mode for an exact wire string; anything else (other case, spaces) is `None`.
    pub fn from_wire(text: &str) -> Option<Self> {
        match text {
            "lockdownDisabled" => Some(Self::Disabled),
            "lockdownNormal" => Some(Self::Normal),
            "lockdownStrict" => Some(Self::Strict),
            _ => None,
        }
    }

    /// The wire string, e.g. `lockdownStrict`.
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Disabled => "lockdownDisabled",
            Self::Normal => "lockdownNormal",
            Self::Strict => "lockdownStrict",
        }
    }
}

impl ObjectAction {
    /// The action for an exact wire string; anything else is `None`.
    pub fn from_wire(text: &str) -> Option<Self> {
        match text {
            "noAction" => Some(Self::NoAction),
            "ensureObjectAccessibility" => Some(Self::EnsureObjectAccessibility),
            "evacuateAllData" => Some(Self::EvacuateAllData),
            _ => None,
        }
    }

    /// The wire string, e.g. `evacuateAllData`.
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::NoAction => "noAction",
            Self::EnsureObjectAccessibility => "ensureObjectAccessibility",
            Self::EvacuateAllData => "evacuateAllData",
        }
    }
}

/// Parses an `xsd:int` written as plain decimal digits with an optional `-`.
///
/// No `+`, no leading zeros (a C parser could read them as octal), no spaces,
/// no exponent or fraction: anything a parser might read differently is refused.
pub fn parse_decimal_i32(text: &str) -> Option<i32> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    text.parse::<i32>().ok()
}

/// Parses an `xsd:boolean` written as `true` or `false` (the spellings every client uses).
pub fn parse_bool_word(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses an `xsd:boolean` in any of its four lexical forms: `true`, `false`, `1`, `0`.
pub fn parse_xsd_boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_wire_strings() {
        for mode in [
            LockdownMode::Disabled,
            LockdownMode::Normal,
            LockdownMode::Strict,
        ] {
            assert_eq!(LockdownMode::from_wire(mode.as_wire()), Some(mode));
        }
        for action in [
            ObjectAction::NoAction,
            ObjectAction::EnsureObjectAccessibility,
            ObjectAction::EvacuateAllData,
        ] {
            assert_eq!(ObjectAction::from_wire(action.as_wire()), Some(action));
        }
        assert_eq!(LockdownMode::from_wire("LOCKDOWNSTRICT"), None);
        assert_eq!(LockdownMode::from_wire(" lockdownStrict"), None);
    }

    #[test]
    fn decimal_int32_is_strict() {
        assert_eq!(parse_decimal_i32("300"), Some(300));
        assert_eq!(parse_decimal_i32("-1"), Some(-1));
        assert_eq!(parse_decimal_i32("0"), Some(0));
        assert_eq!(parse_decimal_i32("2147483647"), Some(i32::MAX));
        assert_eq!(parse_decimal_i32("-2147483648"), Some(i32::MIN));
        for bad in [
            "",
            "-",
            "+300",
            "0300",
            " 300",
            "300 ",
            "3e2",
            "300.0",
            "2147483648",
            "0x10",
        ] {
            assert_eq!(parse_decimal_i32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn xsd_boolean_has_four_lexical_forms() {
        assert_eq!(parse_xsd_boolean("1"), Some(true));
        assert_eq!(parse_xsd_boolean("0"), Some(false));
        assert_eq!(parse_xsd_boolean("true"), Some(true));
        assert_eq!(parse_xsd_boolean("false"), Some(false));
        for bad in ["TRUE", "01", " 1", "yes", ""] {
            assert_eq!(parse_xsd_boolean(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn body_serialises_with_wire_names_and_skips_unset() {
        let body = EnterMaintenanceModeBody {
            timeout: 300,
            evacuate_powered_off_vms: Some(true),
            maintenance_spec: Some(MaintenanceSpec {
                vsan_mode: Some(VsanMode {
                    object_action: Some(ObjectAction::EnsureObjectAccessibility),
                }),
                purpose: None,
                evac_mode: None,
            }),
        };
        let json = serde_json::to_string(&body).expect("serialises");
        assert_eq!(
            json,
            r#"{"timeout":300,"evacuatePoweredOffVms":true,"maintenanceSpec":{"vsanMode":{"objectAction":"ensureObjectAccessibility"}}}"#
        );
    }
}
