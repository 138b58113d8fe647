//! The typed result of classification: which vSphere call a request is.
//!
//! These plain values travel in request extensions and are serialised into the
//! audit log and the Cedar context. Gateway-side names are `snake_case`; the
//! typed bodies in [`super::bodies`] keep the vim wire names.

use serde::Serialize;

use super::bodies::{ChangeLockdownModeBody, EnterMaintenanceModeBody};
use super::effects::EffectFacts;
use super::schedule::Schedule;

/// The wire protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `/sdk/{namespace}/{release}/{MoType}/{moId}/{name}` with JSON bodies.
    VimJson,
    /// SOAP envelopes posted under `/sdk`.
    Soap,
    /// The vSphere Automation REST API (`/api`, `/rest`): passed through, except Lifecycle
    /// Manager remediations (decided by policy).
    Rest,
    /// Anything else: passed through.
    Other,
}

/// A managed object reference, as the client named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MoRef {
    /// The managed object type, e.g. `HostSystem`.
    pub mo_type: String,
    /// The opaque managed object id, e.g. `host-42`.
    pub value: String,
}

impl MoRef {
    /// A reference to `value` of type `mo_type`.
    pub fn new(mo_type: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            mo_type: mo_type.into(),
            value: value.into(),
        }
    }
}

/// What the request does, as far as the protocol names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Call {
    /// A vim method call, by its name as sent (guarded names in canonical case).
    Method(String),
    /// A VI/JSON property read (`GET .../{property}`).
    PropertyRead(String),
    /// Not a vim call (REST, other paths).
    Unknown,
}

/// One classified request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// The API release from the VI/JSON path (SOAP: see `classify::soap_release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The object the call is made on (`_this`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<MoRef>,
    /// The call itself.
    pub call: Call,
    /// The guarded effect of this request, direct or indirect, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guarded: Option<GuardedCall>,
}

impl Operation {
    /// A request the gateway passes through without knowing the call (REST, other paths).
    pub fn pass_through(protocol: Protocol) -> Self {
        Self {
            protocol,
            release: None,
            target: None,
            call: Call::Unknown,
            guarded: None,
        }
    }

    /// A guarded call of the Automation REST API (a Lifecycle Manager remediation).
    pub fn rest(call: GuardedCall) -> Self {
        Self {
            protocol: Protocol::Rest,
            release: None,
            target: Some(call.target.clone()),
            call: Call::Unknown,
            guarded: Some(call),
        }
    }

    /// Whether policies must decide on this request.
    pub fn is_guarded(&self) -> bool {
        self.guarded.is_some()
    }

    /// The method name of a method call.
    pub fn method_name(&self) -> Option<&str> {
        match &self.call {
            Call::Method(name) => Some(name),
            _ => None,
        }
    }
}

/// A guarded effect: which guarded method runs, on what, with which parameters, by which route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardedCall {
    /// Canonical guarded vim method, e.g. `EnterMaintenanceMode_Task`.
    pub method: String,
    /// The object the effect lands on (the host, the `HostAccessManager`, or see [`Route`]).
    pub target: MoRef,
    /// The parameters the effect is asked with.
    pub body: GuardedBody,
    /// How the request reaches the guarded method.
    pub route: Route,
    /// The method (or REST operation) the request itself calls: the guarded method for a
    /// direct call, the carrier (`ExecuteSoap`, `CreateScheduledTask`, ...) otherwise.
    pub via: String,
}

/// How a request reaches a guarded method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    /// The request calls the method itself.
    Direct,
    /// `ExecuteSoap` on a `ReflectManagedMethodExecuter` running an esxcli command.
    Esxcli {
        /// The esxcli method, e.g. `vim.EsxCLI.system.maintenanceMode.set`.
        command: String,
    },
    /// A scheduled task whose `MethodAction` names the method; vCenter runs it later.
    ScheduledTask {
        /// The carrier call, e.g. `CreateScheduledTask`.
        carrier: String,
        /// When it runs, as far as the request says.
        schedule: Schedule,
    },
    /// An alarm whose `MethodAction` names the method; vCenter runs it when the alarm fires.
    Alarm {
        /// The carrier call, e.g. `CreateAlarm`.
        carrier: String,
    },
    /// `ExecuteSoap` invoking the vmodl form of a method (`vim.host.ServiceSystem.stop`).
    Vmodl {
        /// The vmodl method as sent.
        method: String,
    },
    /// `RunScheduledTask` of a stored task whose action vCenter reported.
    RunScheduledTask {
        /// The scheduled task's moId.
        task: String,
    },
    /// A vSphere Lifecycle Manager remediation over the Automation REST API.
    LifecycleRest {
        /// The operation, e.g. `POST /api/esx/settings/clusters/{cluster}/software?action=apply`.
        operation: String,
    },
}

impl Route {
    /// Whether the effect happens through another call than the guarded method itself.
    pub fn is_indirect(&self) -> bool {
        !matches!(self, Self::Direct)
    }

    /// The route's name in the policy context and the audit log (`direct`, `esxcli`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Esxcli { .. } => "esxcli",
            Self::ScheduledTask { .. } => "scheduled_task",
            Self::Alarm { .. } => "alarm",
            Self::Vmodl { .. } => "vmodl",
            Self::RunScheduledTask { .. } => "run_scheduled_task",
            Self::LifecycleRest { .. } => "lifecycle_rest",
        }
    }

    /// When a carrier runs the call: the scheduled task's schedule; an alarm's is unbounded.
    pub fn schedule(&self) -> Option<Schedule> {
        match self {
            Self::ScheduledTask { schedule, .. } => Some(schedule.clone()),
            Self::Alarm { .. } => Some(Schedule::alarm()),
            _ => None,
        }
    }
}

/// The parameters of a guarded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GuardedBody {
    /// `EnterMaintenanceMode_Task` parameters.
    EnterMaintenanceMode(EnterMaintenanceModeBody),
    /// `ChangeLockdownMode` parameters.
    ChangeLockdownMode(ChangeLockdownModeBody),
    /// A method without parameters (or whose parameters do not matter for its route).
    NoParameters,
    /// A method classified by its effect (PROTOCOL.md §8): the facts policies decide on.
    Effect(EffectFacts),
    /// An operator-declared guarded method (or an indirect call whose arguments could
    /// not be mapped): the body was checked to be well-formed only.
    Untyped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::bodies::LockdownMode;

    #[test]
    fn operation_serialises_as_plain_records() {
        let op = Operation {
            protocol: Protocol::Soap,
            release: None,
            target: Some(MoRef::new("HostAccessManager", "ha-host-access-manager")),
            call: Call::Method("ChangeLockdownMode".into()),
            guarded: Some(GuardedCall {
                method: "ChangeLockdownMode".into(),
                target: MoRef::new("HostAccessManager", "ha-host-access-manager"),
                body: GuardedBody::ChangeLockdownMode(ChangeLockdownModeBody {
                    mode: LockdownMode::Strict,
                }),
                route: Route::Direct,
                via: "ChangeLockdownMode".into(),
            }),
        };
        let json = serde_json::to_value(&op).expect("serialises");
        assert_eq!(json["protocol"], "soap");
        assert_eq!(json["call"]["kind"], "method");
        assert_eq!(json["call"]["name"], "ChangeLockdownMode");
        assert_eq!(json["guarded"]["body"]["kind"], "change_lockdown_mode");
        assert_eq!(json["guarded"]["body"]["mode"], "lockdownStrict");
        assert_eq!(json["guarded"]["route"]["kind"], "direct");
        assert!(json.get("release").is_none());
        assert!(op.is_guarded());
        assert_eq!(op.method_name(), Some("ChangeLockdownMode"));
    }

    #[test]
    fn only_direct_route_is_direct() {
        assert!(!Route::Direct.is_indirect());
        assert!(
            Route::Esxcli {
                command: "vim.EsxCLI.system.maintenanceMode.set".into()
            }
            .is_indirect()
        );
        assert!(
            Route::Alarm {
                carrier: "CreateAlarm".into()
            }
            .is_indirect()
        );
    }
}
