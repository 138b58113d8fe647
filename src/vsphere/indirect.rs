//! Indirect routes to guarded methods (PROTOCOL.md §5): esxcli through
//! `ExecuteSoap`, and `MethodAction`s in scheduled tasks and alarms.
//!
//! The protocol modules extract the carrier's parameters; the rules about what
//! they reach live here, so VI/JSON and SOAP carriers are judged alike.

use super::bodies::{EnterMaintenanceModeBody, MaintenanceSpec, OBJECT_ACTIONS, ObjectAction};
use super::bodies::{VsanMode, parse_decimal_i32, parse_xsd_boolean};
use super::effect_tree::Node;
use super::effects::{EffectFacts, EffectMethod, classify_effect, positional_params};
use super::guarded::{CarrierKind, GuardedMethods, MethodLookup, expected_target_type, fold_case};
use super::operation::{GuardedBody, GuardedCall, MoRef, Route};
use super::schedule::Schedule;
use super::xml_tree::parse_fragment;

/// The managed object type `ExecuteSoap` is defined on.
pub const METHOD_EXECUTER_TYPE: &str = "ReflectManagedMethodExecuter";

/// Why a carrier's route to a guarded method was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndirectError {
    /// A guarded method name appears in a carrier body, but not as a `MethodAction` name.
    #[error("{carrier} names guarded method '{found}' outside a MethodAction; refused")]
    StrayMention {
        /// The carrier call.
        carrier: String,
        /// The text found.
        found: String,
    },
    /// A guarded method named in another spelling.
    #[error("guarded method '{found}' in {carrier} must be spelled {canonical}")]
    WrongCase {
        /// The carrier call.
        carrier: String,
        /// As sent.
        found: String,
        /// The canonical spelling.
        canonical: String,
    },
    /// A `MethodAction` or `ExecuteSoap` that names another carrier.
    #[error("{carrier} nests the carrier method '{found}'; refused")]
    NestedCarrier {
        /// The carrier call.
        carrier: String,
        /// The nested method as sent.
        found: String,
    },
    /// A method name with characters no vim method has.
    #[error("method name '{found}' in {carrier} is not a vim method name")]
    NotAMethodName {
        /// The carrier call.
        carrier: String,
        /// As sent.
        found: String,
    },
    /// More than one guarded action in one request.
    #[error("{carrier} carries {count} guarded method actions; send one per request")]
    SeveralActions {
        /// The carrier call.
        carrier: String,
        /// How many.
        count: usize,
    },
    /// The operator guards the carrier itself, and it also carries a guarded action.
    #[error("{carrier} is guarded itself and carries guarded {method}; send them separately")]
    GuardedCarrierCarries {
        /// The carrier call.
        carrier: String,
        /// The guarded action.
        method: String,
    },
    /// A carrier with a guarded action but no object to run it on.
    #[error("{carrier} has no '{param}' parameter naming the object {method} would run on")]
    MissingTarget {
        /// The carrier call.
        carrier: String,
        /// The parameter expected.
        param: &'static str,
        /// The guarded action.
        method: String,
    },
    /// A known method aimed at an object of the wrong type.
    #[error("{method} must target a {expected}, not a {found}")]
    WrongTargetType {
        /// The method.
        method: String,
        /// The type it is defined on.
        expected: &'static str,
        /// The type sent.
        found: String,
    },
    /// `ExecuteSoap` naming a guarded vim method (not an esxcli command).
    #[error("ExecuteSoap method '{method}' reaches guarded {canonical}; call {canonical} directly")]
    ExecuteSoapGuarded {
        /// As sent.
        method: String,
        /// The guarded method it reaches.
        canonical: String,
    },
    /// Two `ExecuteSoap` arguments with one name.
    #[error("ExecuteSoap argument '{0}' appears more than once")]
    DuplicateArgument(String),
    /// An esxcli argument this command does not take.
    #[error("unknown argument '{argument}' for esxcli {command}")]
    UnknownArgument {
        /// The argument name.
        argument: String,
        /// The esxcli command.
        command: &'static str,
    },
    /// A required esxcli argument is absent.
    #[error("esxcli {command} needs the argument '{argument}'")]
    MissingArgument {
        /// The argument name.
        argument: &'static str,
        /// The esxcli command.
        command: &'static str,
    },
    /// An esxcli argument whose value cannot be read exactly.
    #[error("esxcli argument '{argument}': {reason}")]
    BadArgument {
        /// The argument name.
        argument: String,
        /// What is wrong.
        reason: String,
    },
}

/// A guarded method found inside a carrier body, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundAction {
    pub(crate) method: String,
    pub(crate) body: GuardedBody,
}

/// One `ReflectManagedMethodExecuterSoapArgument`: a name and an XML-encoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoapArgument {
    pub(crate) name: String,
    pub(crate) val: String,
}

/// What a `MethodAction.name` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionName<'g> {
    /// Nothing the gateway guards.
    Unguarded,
    /// A guarded method (canonical name).
    Guarded(&'g str),
    /// An effect method, classified by its arguments.
    Effect {
        /// The method.
        method: EffectMethod,
        /// Whether the schema declares its action.
        declared: bool,
    },
}

/// Checks a `MethodAction.name`.
pub(crate) fn method_action_name<'g>(
    carrier: &str,
    name: &str,
    guarded: &'g GuardedMethods,
) -> Result<ActionName<'g>, IndirectError> {
    if !is_method_reference(name) {
        return Err(IndirectError::NotAMethodName {
            carrier: carrier.to_owned(),
            found: name.to_owned(),
        });
    }
    match guarded.lookup_reference(name) {
        MethodLookup::NotGuarded => Ok(ActionName::Unguarded),
        MethodLookup::Guarded(canonical) => Ok(ActionName::Guarded(canonical)),
        MethodLookup::Effect { method, declared } => Ok(ActionName::Effect { method, declared }),
        MethodLookup::Carrier { .. } => Err(IndirectError::NestedCarrier {
            carrier: carrier.to_owned(),
            found: name.to_owned(),
        }),
        MethodLookup::WrongCase { canonical } => Err(IndirectError::WrongCase {
            carrier: carrier.to_owned(),
            found: name.to_owned(),
            canonical: canonical.to_owned(),
        }),
    }
}

/// Refuses a text value of a carrier body (outside a `MethodAction` name) that names
/// a guarded or carrier method: such a body is not understood well enough to pass.
pub(crate) fn check_stray_text(
    carrier: &str,
    text: &str,
    guarded: &GuardedMethods,
) -> Result<(), IndirectError> {
    if text.len() > 256 || !is_method_reference(text) {
        return Ok(());
    }
    match guarded.lookup_reference(text) {
        // Effect methods are classified by their arguments, and some have common names
        // (`Update`): a mention elsewhere is only text.
        MethodLookup::NotGuarded | MethodLookup::Effect { .. } => Ok(()),
        _ => Err(IndirectError::StrayMention {
            carrier: carrier.to_owned(),
            found: text.to_owned(),
        }),
    }
}

fn is_method_reference(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// The guarded action a `MethodAction` naming an effect method carries, from its positional
/// argument values; `None` when those show no effect. Arguments the rules cannot read give
/// the worst-case facts.
pub(crate) fn effect_action(
    method: EffectMethod,
    declared: bool,
    values: Vec<Option<Node>>,
) -> Option<FoundAction> {
    let placeholder = MoRef::new("", "");
    let classified = positional_params(method, values)
        .map(|params| classify_effect(method, &placeholder, &params, declared));
    match classified {
        Some(Ok(None)) => None,
        Some(Ok(Some(call))) => Some(FoundAction {
            method: call.method,
            body: call.body,
        }),
        Some(Err(_)) | None => Some(FoundAction {
            method: method.action().to_owned(),
            body: GuardedBody::Effect(EffectFacts::unknown(true)),
        }),
    }
}

/// The guarded call of an operator-guarded carrier that carries no guarded action.
pub(crate) fn carrier_itself(carrier: &str, this: &MoRef) -> GuardedCall {
    GuardedCall {
        method: carrier.to_owned(),
        target: this.clone(),
        body: GuardedBody::Untyped,
        route: Route::Direct,
        via: carrier.to_owned(),
    }
}

/// The guarded call of a scheduled-task or alarm carrier, from the actions found in it.
///
/// The target is the object the action runs on: `obj` of a created scheduled
/// task, `entity` of a created alarm (which may be a container: the action
/// runs on whichever descendant triggers the alarm), and for the `Reconfigure*`
/// calls the scheduled task or alarm itself (`_this`), whose object vCenter
/// already knows and the gateway does not.
pub(crate) fn carrier_call(
    carrier: &str,
    kind: CarrierKind,
    this: &MoRef,
    target_param: Option<MoRef>,
    guarded_itself: bool,
    schedule: Option<Schedule>,
    mut actions: Vec<FoundAction>,
) -> Result<Option<GuardedCall>, IndirectError> {
    if actions.len() > 1 {
        return Err(IndirectError::SeveralActions {
            carrier: carrier.to_owned(),
            count: actions.len(),
        });
    }
    let Some(action) = actions.pop() else {
        return Ok(guarded_itself.then(|| carrier_itself(carrier, this)));
    };
    if guarded_itself {
        return Err(IndirectError::GuardedCarrierCarries {
            carrier: carrier.to_owned(),
            method: action.method,
        });
    }
    let (param, route) = match kind {
        CarrierKind::ScheduledTask { target_param } => (
            target_param,
            Route::ScheduledTask {
                carrier: carrier.to_owned(),
                schedule: schedule.unwrap_or_else(|| Schedule::from_spec(None, 0)),
            },
        ),
        CarrierKind::Alarm { target_param } => (
            target_param,
            Route::Alarm {
                carrier: carrier.to_owned(),
            },
        ),
        CarrierKind::ExecuteSoap => (None, Route::Direct),
    };
    let target = match (param, target_param) {
        (None, _) => this.clone(),
        (Some(_), Some(target)) => {
            let checks_type = matches!(kind, CarrierKind::ScheduledTask { .. });
            if let Some(expected) = expected_target_type(&action.method).filter(|_| checks_type)
                && target.mo_type != expected
            {
                return Err(IndirectError::WrongTargetType {
                    method: action.method,
                    expected,
                    found: target.mo_type,
                });
            }
            target
        }
        (Some(param), None) => {
            return Err(IndirectError::MissingTarget {
                carrier: carrier.to_owned(),
                param,
                method: action.method,
            });
        }
    };
    Ok(Some(GuardedCall {
        method: action.method,
        target,
        body: action.body,
        route,
        via: carrier.to_owned(),
    }))
}

/// An esxcli command that reaches a guarded effect: handler moId, method, canonical command.
struct EsxcliCommand {
    handler: &'static str,
    method: &'static str,
    command: &'static str,
}

const ESXCLI_MAINTENANCE_SET: EsxcliCommand = EsxcliCommand {
    handler: "ha-cli-handler-system-maintenancemode",
    method: "set",
    command: "vim.EsxCLI.system.maintenanceMode.set",
};
const ESXCLI_REBOOT: EsxcliCommand = EsxcliCommand {
    handler: "ha-cli-handler-system-shutdown",
    method: "reboot",
    command: "vim.EsxCLI.system.shutdown.reboot",
};
const ESXCLI_POWEROFF: EsxcliCommand = EsxcliCommand {
    handler: "ha-cli-handler-system-shutdown",
    method: "poweroff",
    command: "vim.EsxCLI.system.shutdown.poweroff",
};

/// Classifies `ExecuteSoap(moid, version, method, argument[])` on a `ReflectManagedMethodExecuter`.
///
/// A host's method executer looks the object up by `moid` and the method by the
/// part of `method` after the last `.` (retrying it uncapitalised), so esxcli
/// commands are recognised by handler moId and method name, case-insensitively.
/// `system.maintenanceMode.set` with `enable=true` is `EnterMaintenanceMode_Task`
/// (timeout from `timeout`, else 0; `vsanmode` as the vSAN object action), with
/// `enable=false` `ExitMaintenanceMode_Task`; `system.shutdown.reboot` and
/// `.poweroff` are `RebootHost_Task` and `ShutdownHost_Task`. These are reported
/// as guarded whatever the operator's set holds. Any other method the executer
/// would resolve to a guarded vim method (`moid=ha-host`,
/// `method=vim.HostSystem.enterMaintenanceMode`) is refused, as is a carrier.
///
/// Limitation: the target is the `ReflectManagedMethodExecuter` itself, whose
/// moId vCenter hands out per host from `HostSystem.RetrieveManagedMethodExecuter`;
/// which host it drives is not in the request. A gateway that wants the host must
/// remember the `RetrieveManagedMethodExecuter` answers it forwarded.
pub(crate) fn execute_soap_call(
    this: &MoRef,
    moid: &str,
    method: &str,
    arguments: &[SoapArgument],
    guarded: &GuardedMethods,
) -> Result<Option<GuardedCall>, IndirectError> {
    if this.mo_type != METHOD_EXECUTER_TYPE {
        return Err(IndirectError::WrongTargetType {
            method: "ExecuteSoap".into(),
            expected: METHOD_EXECUTER_TYPE,
            found: this.mo_type.clone(),
        });
    }
    for (i, arg) in arguments.iter().enumerate() {
        if arguments[..i].iter().any(|a| a.name == arg.name) {
            return Err(IndirectError::DuplicateArgument(arg.name.clone()));
        }
    }
    if !is_method_reference(method) {
        return Err(IndirectError::NotAMethodName {
            carrier: "ExecuteSoap".into(),
            found: method.to_owned(),
        });
    }
    let handler = fold_case(moid);
    let last = fold_case(method.rsplit('.').next().unwrap_or(method));
    let esxcli = [ESXCLI_MAINTENANCE_SET, ESXCLI_REBOOT, ESXCLI_POWEROFF]
        .into_iter()
        .find(|c| c.handler == handler && c.method == last);
    if let Some(cmd) = esxcli {
        let route = Route::Esxcli {
            command: cmd.command.to_owned(),
        };
        let (method, body) = match cmd.method {
            "set" => maintenance_set(cmd.command, arguments)?,
            "reboot" => ("RebootHost_Task", GuardedBody::NoParameters),
            _ => ("ShutdownHost_Task", GuardedBody::NoParameters),
        };
        return Ok(Some(GuardedCall {
            method: method.to_owned(),
            target: this.clone(),
            body,
            route,
            via: "ExecuteSoap".to_owned(),
        }));
    }
    if let Some(effect) = EffectMethod::from_vmodl(method)
        && let Some(params) = vmodl_params(effect, arguments)?
    {
        let call = classify_effect(effect, this, &params, false).map_err(|err| {
            IndirectError::BadArgument {
                argument: method.to_owned(),
                reason: err.to_string(),
            }
        })?;
        return Ok(call.map(|call| GuardedCall {
            route: Route::Vmodl {
                method: method.to_owned(),
            },
            via: "ExecuteSoap".to_owned(),
            ..call
        }));
    }
    match guarded.lookup_reference(method) {
        MethodLookup::NotGuarded | MethodLookup::Effect { .. } => Ok(None),
        MethodLookup::Guarded(canonical) | MethodLookup::WrongCase { canonical } => {
            Err(IndirectError::ExecuteSoapGuarded {
                method: method.to_owned(),
                canonical: canonical.to_owned(),
            })
        }
        MethodLookup::Carrier { .. } => Err(IndirectError::NestedCarrier {
            carrier: "ExecuteSoap".into(),
            found: method.to_owned(),
        }),
    }
}

/// The `ExecuteSoap` arguments of a vmodl effect method as named parameters; `None` for a
/// service-system name (`stop`, ...) without an `id` argument (another object's method).
fn vmodl_params(
    effect: EffectMethod,
    arguments: &[SoapArgument],
) -> Result<Option<Node>, IndirectError> {
    let service = matches!(
        effect,
        EffectMethod::StopService
            | EffectMethod::UninstallService
            | EffectMethod::RestartService
            | EffectMethod::UpdateServicePolicy
    );
    if service && !arguments.iter().any(|a| a.name == "id") {
        return Ok(None);
    }
    let mut fields = Vec::new();
    for arg in arguments {
        let bad = |reason: String| IndirectError::BadArgument {
            argument: arg.name.clone(),
            reason,
        };
        let element = parse_fragment(&arg.val).map_err(|e| bad(e.to_string()))?;
        if let Some(attr) = element.disallowed_attr(&["type"]) {
            return Err(bad(format!("attribute '{}' is not allowed", attr.local)));
        }
        let node = Node::from_xml_element(&element, "ExecuteSoap argument")
            .map_err(|e| bad(e.to_string()))?;
        match node {
            Node::Struct {
                type_name: Some(ref t),
                fields: ref items,
            } if t.starts_with("ArrayOf") => {
                fields.extend(items.iter().map(|(_, v)| (arg.name.clone(), v.clone())));
            }
            other => fields.push((arg.name.clone(), other)),
        }
    }
    Ok(Some(Node::Struct {
        type_name: None,
        fields,
    }))
}

fn maintenance_set(
    command: &'static str,
    arguments: &[SoapArgument],
) -> Result<(&'static str, GuardedBody), IndirectError> {
    let mut enable = None;
    let mut timeout = None;
    let mut object_action = None;
    for arg in arguments {
        let text = argument_text(arg)?;
        let bad = |reason: String| IndirectError::BadArgument {
            argument: arg.name.clone(),
            reason,
        };
        match arg.name.as_str() {
            "enable" => {
                enable = Some(parse_xsd_boolean(&text).ok_or_else(|| {
                    bad(format!(
                        "'{text}' is not an xsd:boolean (true, false, 1, 0)"
                    ))
                })?);
            }
            "timeout" => {
                timeout = Some(
                    parse_decimal_i32(&text)
                        .ok_or_else(|| bad(format!("'{text}' is not an int32")))?,
                );
            }
            "vsanmode" => {
                object_action = Some(
                    ObjectAction::from_wire(&text)
                        .ok_or_else(|| bad(format!("'{text}' is not one of: {OBJECT_ACTIONS}")))?,
                );
            }
            other => {
                return Err(IndirectError::UnknownArgument {
                    argument: other.to_owned(),
                    command,
                });
            }
        }
    }
    match enable {
        Some(true) => Ok((
            "EnterMaintenanceMode_Task",
            GuardedBody::EnterMaintenanceMode(EnterMaintenanceModeBody {
                timeout: timeout.unwrap_or(0),
                evacuate_powered_off_vms: None,
                maintenance_spec: object_action.map(|action| MaintenanceSpec {
                    vsan_mode: Some(VsanMode {
                        object_action: Some(action),
                    }),
                    purpose: None,
                    evac_mode: None,
                }),
            }),
        )),
        Some(false) => Ok(("ExitMaintenanceMode_Task", GuardedBody::NoParameters)),
        None => Err(IndirectError::MissingArgument {
            argument: "enable",
            command,
        }),
    }
}

/// The text of an argument value: one XML element (any name, e.g. `<enable>` or
/// pyVmomi's `<object xsi:type="xsd:boolean">`) holding text only.
fn argument_text(arg: &SoapArgument) -> Result<String, IndirectError> {
    let bad = |reason: String| IndirectError::BadArgument {
        argument: arg.name.clone(),
        reason,
    };
    let element = parse_fragment(&arg.val).map_err(|e| bad(e.to_string()))?;
    if !element.children.is_empty() {
        return Err(bad("value must be one element holding text".into()));
    }
    if let Some(attr) = element.disallowed_attr(&[]) {
        return Err(bad(format!("attribute '{}' is not allowed", attr.local)));
    }
    Ok(element.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::bodies::LockdownMode;

    fn executer() -> MoRef {
        MoRef::new(METHOD_EXECUTER_TYPE, "ha-mme-host-42")
    }

    fn arg(name: &str, val: &str) -> SoapArgument {
        SoapArgument {
            name: name.into(),
            val: val.into(),
        }
    }

    fn exec(
        moid: &str,
        method: &str,
        args: &[SoapArgument],
    ) -> Result<Option<GuardedCall>, IndirectError> {
        execute_soap_call(&executer(), moid, method, args, &GuardedMethods::new())
    }

    #[test]
    fn esxcli_maintenance_set_enter_and_exit() {
        let call = exec(
            "ha-cli-handler-system-maintenancemode",
            "vim.EsxCLI.system.maintenanceMode.set",
            &[
                arg("enable", "<enable>true</enable>"),
                arg("vsanmode", "<vsanmode>evacuateAllData</vsanmode>"),
            ],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(call.method, "EnterMaintenanceMode_Task");
        assert_eq!(call.target, executer());
        assert_eq!(
            call.route,
            Route::Esxcli {
                command: "vim.EsxCLI.system.maintenanceMode.set".into()
            }
        );
        let GuardedBody::EnterMaintenanceMode(body) = call.body else {
            panic!("typed body")
        };
        assert_eq!(body.timeout, 0);
        assert_eq!(
            body.maintenance_spec
                .and_then(|s| s.vsan_mode)
                .and_then(|v| v.object_action),
            Some(ObjectAction::EvacuateAllData)
        );
        let call = exec(
            "ha-cli-handler-system-maintenancemode",
            "vim.EsxCLI.system.maintenanceMode.set",
            &[arg("enable", r#"<object xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:boolean">false</object>"#)],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(call.method, "ExitMaintenanceMode_Task");
        assert_eq!(call.body, GuardedBody::NoParameters);
    }

    #[test]
    fn esxcli_is_recognised_by_handler_and_last_name() {
        for (moid, method) in [
            ("ha-cli-handler-system-maintenancemode", "anything.set"),
            ("HA-CLI-HANDLER-SYSTEM-MAINTENANCEMODE", "Set"),
            (
                "ha-cli-handler-system-maintenancemode",
                "vim.EsxCLI.system.maintenanceMode.SET",
            ),
        ] {
            let call = exec(moid, method, &[arg("enable", "<enable>true</enable>")])
                .expect("ok")
                .expect("guarded");
            assert_eq!(call.method, "EnterMaintenanceMode_Task", "{moid} {method}");
        }
        let reboot = exec(
            "ha-cli-handler-system-shutdown",
            "vim.EsxCLI.system.shutdown.reboot",
            &[arg("reason", "<reason>x</reason>")],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(reboot.method, "RebootHost_Task");
        let off = exec(
            "ha-cli-handler-system-shutdown",
            "vim.EsxCLI.system.shutdown.poweroff",
            &[],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(off.method, "ShutdownHost_Task");
        assert_eq!(
            exec(
                "ha-cli-handler-system-maintenancemode",
                "vim.EsxCLI.system.maintenanceMode.get",
                &[]
            ),
            Ok(None)
        );
        assert_eq!(
            exec(
                "ha-cli-handler-network-firewall",
                "vim.EsxCLI.network.firewall.set",
                &[arg("enabled", "<enabled>false</enabled>")]
            ),
            Ok(None)
        );
    }

    #[test]
    fn esxcli_argument_refusals() {
        let set = |args: &[SoapArgument]| {
            exec(
                "ha-cli-handler-system-maintenancemode",
                "vim.EsxCLI.system.maintenanceMode.set",
                args,
            )
        };
        assert!(set(&[]).is_err());
        assert!(set(&[arg("enable", "<enable>yes</enable>")]).is_err());
        assert!(
            set(&[
                arg("enable", "<enable>true</enable>"),
                arg("enable", "<enable>false</enable>")
            ])
            .is_err()
        );
        assert!(
            set(&[
                arg("enable", "<enable>true</enable>"),
                arg("force", "<force>true</force>")
            ])
            .is_err()
        );
        assert!(set(&[arg("enable", "<!DOCTYPE x><enable>true</enable>")]).is_err());
        assert!(set(&[arg("enable", "<enable><b>true</b></enable>")]).is_err());
        assert!(set(&[arg("enable", "<enable xsi:nil=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">true</enable>")]).is_err());
        assert!(
            set(&[
                arg("enable", "<enable>true</enable>"),
                arg("timeout", "<timeout>1e3</timeout>")
            ])
            .is_err()
        );
        let call = set(&[
            arg("enable", "<enable>tr<!-- -->ue</enable>"),
            arg("timeout", "<timeout>&#51;00</timeout>"),
        ])
        .expect("ok")
        .expect("guarded");
        assert!(matches!(
            call.body,
            GuardedBody::EnterMaintenanceMode(EnterMaintenanceModeBody { timeout: 300, .. })
        ));
    }

    #[test]
    fn execute_soap_of_guarded_vim_methods_is_refused() {
        let err = exec("ha-host", "vim.HostSystem.enterMaintenanceMode", &[]).expect_err("refused");
        assert!(
            err.to_string()
                .contains("reaches guarded EnterMaintenanceMode_Task"),
            "{err}"
        );
        assert!(
            exec(
                "ha-host-access-manager",
                "vim.host.HostAccessManager.changeLockdownMode",
                &[]
            )
            .is_err()
        );
        assert!(exec("ha-host", "ENTERLOCKDOWNMODE", &[]).is_err());
        assert!(
            exec(
                "ha-scheduled-task-manager",
                "vim.scheduler.ScheduledTaskManager.create",
                &[]
            )
            .is_err()
        );
        assert!(exec("ha-host", "vim.HostSystem.enterMaintenanceMode ", &[]).is_err());
        assert!(
            execute_soap_call(
                &MoRef::new("HostSystem", "host-1"),
                "ha-host",
                "vim.HostSystem.rebootHost",
                &[],
                &GuardedMethods::new()
            )
            .is_err()
        );
        assert_eq!(
            exec("ha-host", "vim.HostSystem.retrieveHardwareUptime", &[]),
            Ok(None)
        );
    }

    #[test]
    fn esxcli_enable_takes_every_xsd_boolean_form() {
        for (text, method) in [
            ("1", "EnterMaintenanceMode_Task"),
            ("true", "EnterMaintenanceMode_Task"),
            ("0", "ExitMaintenanceMode_Task"),
            ("false", "ExitMaintenanceMode_Task"),
        ] {
            let call = exec(
                "ha-cli-handler-system-maintenancemode",
                "vim.EsxCLI.system.maintenanceMode.set",
                &[arg("enable", &format!("<enable>{text}</enable>"))],
            )
            .expect("ok")
            .expect("guarded");
            assert_eq!(call.method, method, "{text}");
        }
    }

    #[test]
    fn vmodl_forms_of_effect_methods() {
        let call = exec(
            "serviceSystem",
            "vim.host.ServiceSystem.stop",
            &[arg("id", "<id>DCUI</id>")],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(call.method, "StopService");
        assert_eq!(call.via, "ExecuteSoap");
        assert_eq!(
            call.route,
            Route::Vmodl {
                method: "vim.host.ServiceSystem.stop".into()
            }
        );
        assert!(matches!(call.body, GuardedBody::Effect(ref f) if f.dcui_stopped));
        assert_eq!(
            exec(
                "serviceSystem",
                "vim.host.ServiceSystem.stop",
                &[arg("id", "<id>ntpd</id>")]
            ),
            Ok(None)
        );
        let options = exec(
            "EsxHostAdvSettings-21",
            "vim.option.OptionManager.updateValues",
            &[arg(
                "changedValue",
                r#"<changedValue xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfOptionValue"><OptionValue><key>DCUI.Access</key><value xsi:type="xsd:string"></value></OptionValue></changedValue>"#,
            )],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(options.method, "UpdateOptions");
        assert!(matches!(options.body, GuardedBody::Effect(ref f) if f.dcui_access_changed));
        let exceptions = exec(
            "ha-host-access-manager",
            "vim.host.HostAccessManager.updateLockdownExceptions",
            &[arg("users", "<users>root</users>")],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(exceptions.method, "UpdateLockdownExceptions");
        assert!(
            exec(
                "serviceSystem",
                "vim.host.ServiceSystem.stop",
                &[arg("id", "<id>dcui</id>")]
            )
            .is_err()
        );
    }

    #[test]
    fn carrier_call_rules() {
        let this = MoRef::new("ScheduledTaskManager", "ScheduledTaskManager");
        let action = || FoundAction {
            method: "ChangeLockdownMode".into(),
            body: GuardedBody::ChangeLockdownMode(crate::vsphere::bodies::ChangeLockdownModeBody {
                mode: LockdownMode::Strict,
            }),
        };
        let kind = CarrierKind::ScheduledTask {
            target_param: Some("obj"),
        };
        let ham = MoRef::new("HostAccessManager", "ham-1");
        let call = carrier_call(
            "CreateObjectScheduledTask",
            kind,
            &this,
            Some(ham.clone()),
            false,
            None,
            vec![action()],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(call.target, ham);
        assert!(
            carrier_call(
                "CreateObjectScheduledTask",
                kind,
                &this,
                None,
                false,
                None,
                vec![action()]
            )
            .is_err()
        );
        assert!(
            carrier_call(
                "CreateObjectScheduledTask",
                kind,
                &this,
                Some(ham.clone()),
                false,
                None,
                vec![action(), action()]
            )
            .is_err()
        );
        assert!(
            carrier_call(
                "CreateObjectScheduledTask",
                kind,
                &this,
                Some(ham.clone()),
                true,
                None,
                vec![action()]
            )
            .is_err()
        );
        assert!(
            carrier_call(
                "CreateObjectScheduledTask",
                kind,
                &this,
                Some(MoRef::new("HostSystem", "host-1")),
                false,
                None,
                vec![action()]
            )
            .is_err()
        );
        assert_eq!(
            carrier_call(
                "CreateObjectScheduledTask",
                kind,
                &this,
                Some(ham.clone()),
                false,
                None,
                vec![]
            ),
            Ok(None)
        );
        let own = carrier_call(
            "CreateObjectScheduledTask",
            kind,
            &this,
            Some(ham),
            true,
            None,
            vec![],
        )
        .expect("ok")
        .expect("guarded itself");
        assert_eq!(own.method, "CreateObjectScheduledTask");
        let reconfigure = carrier_call(
            "ReconfigureScheduledTask",
            CarrierKind::ScheduledTask { target_param: None },
            &MoRef::new("ScheduledTask", "schedule-7"),
            None,
            false,
            None,
            vec![action()],
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(
            reconfigure.target,
            MoRef::new("ScheduledTask", "schedule-7")
        );
    }

    #[test]
    fn stray_and_names() {
        let set = GuardedMethods::new();
        assert!(check_stray_text("CreateAlarm", "EnterMaintenanceMode_Task", &set).is_err());
        assert!(check_stray_text("CreateAlarm", "vim.HostSystem.enterLockdownMode", &set).is_err());
        assert!(check_stray_text("CreateAlarm", "ExecuteSoap", &set).is_err());
        assert!(check_stray_text("CreateAlarm", "host maintenance", &set).is_ok());
        assert!(check_stray_text("CreateAlarm", "host-42", &set).is_ok());
        assert!(method_action_name("CreateAlarm", "EnterMaintenanceMode_Task ", &set).is_err());
        assert_eq!(
            method_action_name("CreateAlarm", "PowerOnVM_Task", &set),
            Ok(ActionName::Unguarded)
        );
    }
}
