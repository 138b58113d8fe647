//! Effects, not methods (PROTOCOL.md §8): the vim methods besides the day-one ones that
//! reach the guarded effects — a host losing its DCUI escape hatch (strict lockdown), a
//! host entering maintenance mode — and the facts policies decide on (`context.effect`).
//!
//! Each method here is read whole and classified by [`classify_effect`]. It becomes a
//! guarded call when the policy schema declares it (the operator guards the method as
//! such) or when its parameters show the effect (`StopService("DCUI")`, a host profile
//! that sets `lockdownStrict`, ...). The Cedar action is the method's name (except EAM's
//! `Update`, which is `UpdateAgency`); the schema groups the actions by effect.
//!
//! Facts are written so that what the gateway cannot read counts as the worst case:
//! a DCUI mention it does not understand is a stopped DCUI, an action it cannot look up
//! enters maintenance.

use serde::Serialize;

use super::bodies::LockdownMode;
use super::effect_tree::{Node, TreeError};
use super::guarded::fold_case;
use super::operation::{GuardedBody, GuardedCall, MoRef, Route};

/// The DCUI service key (`HostServiceSystem`).
pub const DCUI_SERVICE: &str = "DCUI";
/// The host advanced option listing the users allowed on the DCUI during lockdown.
pub const DCUI_ACCESS_OPTION: &str = "DCUI.Access";

/// A method whose parameters can reach a guarded effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectMethod {
    /// `HostServiceSystem.StopService(id)`.
    StopService,
    /// `HostServiceSystem.UninstallService(id)`.
    UninstallService,
    /// `HostServiceSystem.RestartService(id)`.
    RestartService,
    /// `HostServiceSystem.UpdateServicePolicy(id, policy)`.
    UpdateServicePolicy,
    /// `OptionManager.UpdateOptions(changedValue[])`.
    UpdateOptions,
    /// `HostAccessManager.UpdateLockdownExceptions(users[])`.
    UpdateLockdownExceptions,
    /// `HostAccessManager.ChangeAccessMode(principal, isGroup, accessMode)`.
    ChangeAccessMode,
    /// `HostAccessManager.UpdateSystemUsers(users[])`.
    UpdateSystemUsers,
    /// `HostProfileManager.ApplyHostConfig_Task(host, configSpec, userInput[])`.
    ApplyHostConfig,
    /// `HostProfileManager.ApplyEntitiesConfig_Task(applyConfigSpecs[])`.
    ApplyEntitiesConfig,
    /// `ClusterComputeResource.ConfigureHCI_Task(clusterSpec, hostInputs[])`.
    ConfigureHci,
    /// `Folder.AddStandaloneHost_Task(spec, ...)`.
    AddStandaloneHost,
    /// `ClusterComputeResource.AddHost_Task(spec, ...)`.
    AddHost,
    /// `ClusterComputeResource.ClusterEnterMaintenanceMode(host[], option[])`: recommendations only.
    ClusterEnterMaintenanceMode,
    /// `ClusterComputeResource.ApplyRecommendation(key)`.
    ApplyRecommendation,
    /// `ScheduledTask.RunScheduledTask()`.
    RunScheduledTask,
    /// EAM `EsxAgentManager.CreateAgency(agencyConfigInfo, initialGoalState)`.
    CreateAgency,
    /// EAM `Agency.Update(config)`.
    UpdateAgency,
    /// EAM `Agency.Agency_Enable()`: sets the agency's goal state to enabled, so it installs
    /// its VIBs on the hosts of its scope again.
    EnableAgency,
}

/// Every effect method: wire name, kind, Cedar action, parameter names in order.
pub(crate) const EFFECT_METHODS: &[(&str, EffectMethod, &str, &[&str])] = &[
    (
        "StopService",
        EffectMethod::StopService,
        "StopService",
        &["id"],
    ),
    (
        "UninstallService",
        EffectMethod::UninstallService,
        "UninstallService",
        &["id"],
    ),
    (
        "RestartService",
        EffectMethod::RestartService,
        "RestartService",
        &["id"],
    ),
    (
        "UpdateServicePolicy",
        EffectMethod::UpdateServicePolicy,
        "UpdateServicePolicy",
        &["id", "policy"],
    ),
    (
        "UpdateOptions",
        EffectMethod::UpdateOptions,
        "UpdateOptions",
        &["changedValue"],
    ),
    (
        "UpdateLockdownExceptions",
        EffectMethod::UpdateLockdownExceptions,
        "UpdateLockdownExceptions",
        &["users"],
    ),
    (
        "ChangeAccessMode",
        EffectMethod::ChangeAccessMode,
        "ChangeAccessMode",
        &["principal", "isGroup", "accessMode"],
    ),
    (
        "UpdateSystemUsers",
        EffectMethod::UpdateSystemUsers,
        "UpdateSystemUsers",
        &["users"],
    ),
    (
        "ApplyHostConfig_Task",
        EffectMethod::ApplyHostConfig,
        "ApplyHostConfig_Task",
        &["host", "configSpec", "userInput"],
    ),
    (
        "ApplyEntitiesConfig_Task",
        EffectMethod::ApplyEntitiesConfig,
        "ApplyEntitiesConfig_Task",
        &["applyConfigSpecs"],
    ),
    (
        "ConfigureHCI_Task",
        EffectMethod::ConfigureHci,
        "ConfigureHCI_Task",
        &["clusterSpec", "hostInputs"],
    ),
    (
        "AddStandaloneHost_Task",
        EffectMethod::AddStandaloneHost,
        "AddStandaloneHost_Task",
        &["spec", "compResSpec", "addConnected", "license"],
    ),
    (
        "AddHost_Task",
        EffectMethod::AddHost,
        "AddHost_Task",
        &["spec", "asConnected", "resourcePool", "license"],
    ),
    (
        "ClusterEnterMaintenanceMode",
        EffectMethod::ClusterEnterMaintenanceMode,
        "ClusterEnterMaintenanceMode",
        &["host", "option"],
    ),
    (
        "ApplyRecommendation",
        EffectMethod::ApplyRecommendation,
        "ApplyRecommendation",
        &["key"],
    ),
    (
        "RunScheduledTask",
        EffectMethod::RunScheduledTask,
        "RunScheduledTask",
        &[],
    ),
    (
        "CreateAgency",
        EffectMethod::CreateAgency,
        "CreateAgency",
        &["agencyConfigInfo", "initialGoalState"],
    ),
    (
        "Update",
        EffectMethod::UpdateAgency,
        "UpdateAgency",
        &["config"],
    ),
    (
        "Agency_Enable",
        EffectMethod::EnableAgency,
        "Agency_Enable",
        &[],
    ),
];

/// vmodl method names (`ExecuteSoap`, the part after the last `.`, compared case-insensitively)
/// that reach an effect method.
const VMODL_NAMES: &[(&str, EffectMethod)] = &[
    ("stop", EffectMethod::StopService),
    ("uninstall", EffectMethod::UninstallService),
    ("restart", EffectMethod::RestartService),
    ("updatepolicy", EffectMethod::UpdateServicePolicy),
    ("updatevalues", EffectMethod::UpdateOptions),
    ("updateoptions", EffectMethod::UpdateOptions),
    (
        "updatelockdownexceptions",
        EffectMethod::UpdateLockdownExceptions,
    ),
    ("changeaccessmode", EffectMethod::ChangeAccessMode),
    ("updatesystemusers", EffectMethod::UpdateSystemUsers),
    ("applyhostconfig", EffectMethod::ApplyHostConfig),
];

impl EffectMethod {
    /// The effect method of a wire name in canonical case.
    pub fn from_wire(name: &str) -> Option<Self> {
        EFFECT_METHODS
            .iter()
            .find(|(wire, ..)| *wire == name)
            .map(|(_, m, ..)| *m)
    }

    /// The wire name, e.g. `StopService`.
    pub fn wire_name(self) -> &'static str {
        self.entry().0
    }

    /// The Cedar action (the guarded method name), e.g. `StopService`, `UpdateAgency`.
    pub fn action(self) -> &'static str {
        self.entry().2
    }

    /// The parameter names in order (for positional `MethodAction` arguments).
    pub fn params(self) -> &'static [&'static str] {
        self.entry().3
    }

    /// The effect method a vmodl name reaches through `ExecuteSoap`, if any.
    pub fn from_vmodl(method: &str) -> Option<Self> {
        let last = fold_case(method.rsplit('.').next().unwrap_or(method));
        VMODL_NAMES
            .iter()
            .find(|(name, _)| *name == last)
            .map(|(_, m)| *m)
    }

    fn entry(
        self,
    ) -> &'static (
        &'static str,
        EffectMethod,
        &'static str,
        &'static [&'static str],
    ) {
        EFFECT_METHODS
            .iter()
            .find(|(_, m, ..)| *m == self)
            .unwrap_or(&EFFECT_METHODS[0])
    }

    /// Calls that are guarded whatever their parameters: their effect is the call itself.
    fn always_guarded(self) -> bool {
        matches!(
            self,
            Self::UpdateLockdownExceptions
                | Self::ChangeAccessMode
                | Self::UpdateSystemUsers
                | Self::ApplyEntitiesConfig
                | Self::ClusterEnterMaintenanceMode
                | Self::ApplyRecommendation
                | Self::RunScheduledTask
                | Self::CreateAgency
                | Self::UpdateAgency
                | Self::EnableAgency
        )
    }
}

/// What a call does to hosts, as policies see it (`context.effect`, schema `EffectFacts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EffectFacts {
    /// False when the gateway could not read the parameters (a carried call with unmapped
    /// arguments, a call whose action is only known to vCenter): the flags then say the worst.
    pub known: bool,
    /// The call stops or uninstalls the DCUI service or sets its policy to anything but `on`
    /// (with lockdown, that is strict lockdown).
    pub dcui_stopped: bool,
    /// The call changes who may use the DCUI or the host during lockdown (`DCUI.Access`,
    /// lockdown exception users, system users, access modes).
    pub dcui_access_changed: bool,
    /// The call can put hosts into maintenance mode.
    pub enters_maintenance: bool,
    /// The lockdown mode the call sets (`lockdownStrict` if it sets several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockdown_mode: Option<LockdownMode>,
    /// The service key of a `HostServiceSystem` call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_key: Option<String>,
    /// The new policy of `UpdateServicePolicy` (`on`, `automatic`, `off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_policy: Option<String>,
    /// The new value of `DCUI.Access`, when the call sets it to text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcui_access: Option<String>,
    /// The option keys the call changes.
    pub option_keys: Vec<String>,
    /// The users the call names (lockdown exceptions, system users, an access-mode principal).
    pub users: Vec<String>,
    /// The hosts (or other entities) the call names.
    pub hosts: Vec<String>,
    /// The DRS recommendation `ApplyRecommendation` applies (its `key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    /// The reason vCenter gives for that recommendation (`hostMaint`, `fairnessCpuAvg`, ...),
    /// once looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation_reason: Option<String>,
}

impl EffectFacts {
    /// The facts of a call whose parameters or action are unknown: every flag at its worst.
    pub fn unknown(enters_maintenance: bool) -> Self {
        Self {
            known: false,
            dcui_stopped: true,
            dcui_access_changed: true,
            enters_maintenance,
            ..Self::default()
        }
    }

    fn shows_effect(&self) -> bool {
        self.dcui_stopped
            || self.dcui_access_changed
            || self.enters_maintenance
            || self.lockdown_mode.is_some()
    }
}

/// Why an effect method's parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// The parameters have a shape the rules cannot read.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// A parameter the method does not take.
    #[error("{method}: unknown parameter '{param}'")]
    UnknownParameter {
        /// The method.
        method: &'static str,
        /// The parameter.
        param: String,
    },
    /// A required parameter is absent.
    #[error("{method}: missing parameter '{param}'")]
    MissingParameter {
        /// The method.
        method: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// A scalar parameter given twice, or as a structure.
    #[error("{method}: parameter '{param}' must be given once, as text")]
    BadScalar {
        /// The method.
        method: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// A value outside its enumeration.
    #[error("{method}: '{value}' is not one of: {expected}")]
    BadEnum {
        /// The method.
        method: &'static str,
        /// As sent.
        value: String,
        /// The allowed values.
        expected: &'static str,
    },
    /// A guarded key in another spelling (`dcui`, `Dcui.access`, `LockdownMode`).
    #[error("{method}: '{found}' must be spelled {canonical}")]
    WrongCase {
        /// The method.
        method: &'static str,
        /// As sent.
        found: String,
        /// The canonical spelling.
        canonical: &'static str,
    },
    /// A managed object reference that cannot be read.
    #[error("{method}: parameter '{param}' is not a managed object reference")]
    BadMoRef {
        /// The method.
        method: &'static str,
        /// The parameter.
        param: &'static str,
    },
}

const SERVICE_POLICIES: &str = "on, automatic, off";
const ACCESS_MODES: &str = "accessAdmin, accessNone, accessNoAccess, accessOther, accessReadOnly";

/// Classifies an effect method's parameters; `Some` when the call is guarded.
///
/// `declared` says the policy schema declares the method's action (the operator guards
/// it whatever its parameters); otherwise only calls whose parameters show an effect
/// are guarded.
pub(crate) fn classify_effect(
    method: EffectMethod,
    this: &MoRef,
    params: &Node,
    declared: bool,
) -> Result<Option<GuardedCall>, EffectError> {
    let name = method.wire_name();
    let known = method.params();
    for (param, _) in params.fields() {
        if !known.contains(&param.as_str()) {
            return Err(EffectError::UnknownParameter {
                method: name,
                param: param.clone(),
            });
        }
    }
    let mut facts = EffectFacts {
        known: true,
        ..EffectFacts::default()
    };
    let mut target = this.clone();
    match method {
        EffectMethod::StopService
        | EffectMethod::UninstallService
        | EffectMethod::RestartService
        | EffectMethod::UpdateServicePolicy => {
            let id = required_scalar(params, name, "id")?;
            let dcui = check_spelling(name, id, DCUI_SERVICE)?;
            let policy = if method == EffectMethod::UpdateServicePolicy {
                let policy = required_scalar(params, name, "policy")?;
                if !["on", "automatic", "off"].contains(&policy) {
                    return Err(EffectError::BadEnum {
                        method: name,
                        value: policy.to_owned(),
                        expected: SERVICE_POLICIES,
                    });
                }
                Some(policy.to_owned())
            } else {
                None
            };
            facts.dcui_stopped = dcui
                && match method {
                    EffectMethod::StopService | EffectMethod::UninstallService => true,
                    // `automatic` runs a service only while a firewall port of it is open;
                    // the DCUI has none, so only `on` keeps it running.
                    EffectMethod::UpdateServicePolicy => policy.as_deref() != Some("on"),
                    _ => false,
                };
            facts.service_key = Some(id.to_owned());
            facts.service_policy = policy;
        }
        EffectMethod::UpdateOptions => {
            for value in params.all("changedValue") {
                option_value(value, name, &mut facts)?;
            }
        }
        EffectMethod::UpdateLockdownExceptions | EffectMethod::UpdateSystemUsers => {
            facts.dcui_access_changed = true;
            for user in params.all("users") {
                let text = user.text().ok_or(EffectError::BadScalar {
                    method: name,
                    param: "users",
                })?;
                facts.users.push(text.to_owned());
            }
        }
        EffectMethod::ChangeAccessMode => {
            facts.dcui_access_changed = true;
            let principal = required_scalar(params, name, "principal")?;
            required_scalar(params, name, "isGroup")?;
            let mode = required_scalar(params, name, "accessMode")?;
            if !ACCESS_MODES.split(", ").any(|m| m == mode) {
                return Err(EffectError::BadEnum {
                    method: name,
                    value: mode.to_owned(),
                    expected: ACCESS_MODES,
                });
            }
            facts.users.push(principal.to_owned());
        }
        EffectMethod::ApplyHostConfig => {
            if let Some(host) = params.all("host").next() {
                target = host.mo_ref().ok_or(EffectError::BadMoRef {
                    method: name,
                    param: "host",
                })?;
                facts.hosts.push(target.value.clone());
            }
            scan_host_config(params, name, &mut facts)?;
        }
        EffectMethod::ApplyEntitiesConfig => {
            facts.enters_maintenance = true;
            for spec in params.all("applyConfigSpecs") {
                if let Some(entity) = spec.all("entity").next() {
                    let entity = entity.mo_ref().ok_or(EffectError::BadMoRef {
                        method: name,
                        param: "applyConfigSpecs",
                    })?;
                    facts.hosts.push(entity.value.clone());
                    if params.all("applyConfigSpecs").count() == 1 {
                        target = entity;
                    }
                }
            }
            scan_host_config(params, name, &mut facts)?;
        }
        EffectMethod::ConfigureHci => scan_host_config(params, name, &mut facts)?,
        EffectMethod::AddStandaloneHost | EffectMethod::AddHost => {
            // Only the lockdown mode is read: the spec also holds the host's password.
            for spec in params.all("spec") {
                scan_lockdown_modes(spec, name, &mut facts)?;
            }
        }
        EffectMethod::ClusterEnterMaintenanceMode => {
            for host in params.all("host") {
                let host = host.mo_ref().ok_or(EffectError::BadMoRef {
                    method: name,
                    param: "host",
                })?;
                facts.hosts.push(host.value);
            }
        }
        EffectMethod::ApplyRecommendation => {
            let key = required_scalar(params, name, "key")?;
            // What the recommendation does is only known to vCenter until it is looked up.
            facts = EffectFacts {
                recommendation: Some(key.to_owned()),
                ..EffectFacts::unknown(true)
            };
        }
        EffectMethod::RunScheduledTask => facts = EffectFacts::unknown(true),
        EffectMethod::CreateAgency | EffectMethod::UpdateAgency | EffectMethod::EnableAgency => {
            facts.enters_maintenance = true;
        }
    }
    if !(declared || method.always_guarded() || facts.shows_effect()) {
        return Ok(None);
    }
    Ok(Some(GuardedCall {
        method: method.action().to_owned(),
        target,
        body: GuardedBody::Effect(facts),
        route: Route::Direct,
        via: name.to_owned(),
    }))
}

/// The positional values of a `MethodAction` (a scheduled task or alarm) as named parameters.
pub(crate) fn positional_params(method: EffectMethod, values: Vec<Option<Node>>) -> Option<Node> {
    let names = method.params();
    if values.len() > names.len() {
        return None;
    }
    let fields = names
        .iter()
        .zip(values)
        .filter_map(|(name, value)| value.map(|v| ((*name).to_owned(), v)))
        .flat_map(|(name, value)| match value {
            // A boxed array (`ArrayOfString`, ...) is its items.
            Node::Struct {
                type_name: Some(ref t),
                ref fields,
            } if t.starts_with("ArrayOf") => fields
                .iter()
                .map(|(_, item)| (name.clone(), item.clone()))
                .collect::<Vec<_>>(),
            other => vec![(name, other)],
        })
        .collect();
    Some(Node::Struct {
        type_name: None,
        fields,
    })
}

/// `true` when `found` is `canonical`; an error when it is another spelling of it.
fn check_spelling(
    method: &'static str,
    found: &str,
    canonical: &'static str,
) -> Result<bool, EffectError> {
    if found == canonical {
        return Ok(true);
    }
    if fold_case(found.trim()) == fold_case(canonical) {
        return Err(EffectError::WrongCase {
            method,
            found: found.to_owned(),
            canonical,
        });
    }
    Ok(false)
}

fn required_scalar<'a>(
    params: &'a Node,
    method: &'static str,
    param: &'static str,
) -> Result<&'a str, EffectError> {
    let mut values = params.all(param);
    let first = values
        .next()
        .ok_or(EffectError::MissingParameter { method, param })?;
    if values.next().is_some() {
        return Err(EffectError::BadScalar { method, param });
    }
    first.text().ok_or(EffectError::BadScalar { method, param })
}

/// One `OptionValue{key, value}`.
fn option_value(
    value: &Node,
    method: &'static str,
    facts: &mut EffectFacts,
) -> Result<(), EffectError> {
    let key = required_scalar(value, method, "key")?;
    if check_spelling(method, key, DCUI_ACCESS_OPTION)? {
        facts.dcui_access_changed = true;
        facts.dcui_access = value
            .all("value")
            .next()
            .and_then(Node::text)
            .map(str::to_owned);
    } else if fold_case(key).starts_with("dcui.") {
        // Another DCUI setting the gateway does not know: assume the worst.
        facts.dcui_access_changed = true;
        facts.dcui_stopped = true;
    }
    facts.option_keys.push(key.to_owned());
    Ok(())
}

/// Reads a host configuration (host profile, HCI cluster spec) for the DCUI service, the
/// DCUI options and lockdown modes, at any depth. A DCUI mention the rules do not
/// understand counts as a stopped DCUI.
fn scan_host_config(
    params: &Node,
    method: &'static str,
    facts: &mut EffectFacts,
) -> Result<(), EffectError> {
    scan_lockdown_modes(params, method, facts)?;
    let mut result = Ok(());
    let mut understood: Vec<*const Node> = Vec::new();
    params.visit(&mut |_, node| {
        if result.is_err() || node.text().is_some() {
            return;
        }
        let service = node
            .all("serviceId")
            .chain(node.all("key"))
            .filter_map(Node::text)
            .find(|id| fold_case(id.trim()) == fold_case(DCUI_SERVICE));
        let option = node
            .all("key")
            .filter_map(Node::text)
            .find(|key| fold_case(key.trim()).starts_with("dcui."));
        if let Some(id) = service {
            if let Err(e) = check_spelling(method, id, DCUI_SERVICE) {
                result = Err(e);
                return;
            }
            let policy = node
                .all("startupPolicy")
                .chain(node.all("policy"))
                .filter_map(Node::text)
                .next();
            let removed = node
                .all("changeOperation")
                .filter_map(Node::text)
                .any(|op| op != "edit" && op != "add");
            let not_running = node
                .all("running")
                .filter_map(Node::text)
                .any(|r| r != "true");
            if removed || not_running || policy != Some("on") {
                facts.dcui_stopped = true;
            }
            facts.service_key = Some(DCUI_SERVICE.to_owned());
            understood.extend(node.fields().iter().map(|(_, v)| v as *const Node));
        } else if option.is_some() {
            if let Err(e) = option_value(node, method, facts) {
                result = Err(e);
                return;
            }
            understood.extend(node.fields().iter().map(|(_, v)| v as *const Node));
        }
    });
    result?;
    params.visit(&mut |_, node| {
        if let Some(text) = node.text()
            && fold_case(text).contains("dcui")
            && !understood.contains(&(node as *const Node))
        {
            facts.dcui_stopped = true;
            facts.dcui_access_changed = true;
        }
    });
    Ok(())
}

/// Every `lockdownMode` field at any depth; the strictest mode wins.
fn scan_lockdown_modes(
    node: &Node,
    method: &'static str,
    facts: &mut EffectFacts,
) -> Result<(), EffectError> {
    let mut result = Ok(());
    node.visit(&mut |name, value| {
        if result.is_err() || fold_case(name) != "lockdownmode" {
            return;
        }
        if name != "lockdownMode" {
            result = Err(EffectError::WrongCase {
                method,
                found: name.to_owned(),
                canonical: "lockdownMode",
            });
            return;
        }
        let Some(mode) = value.text().and_then(LockdownMode::from_wire) else {
            result = Err(EffectError::BadEnum {
                method,
                value: value.text().unwrap_or("(a structure)").to_owned(),
                expected: super::bodies::LOCKDOWN_MODES,
            });
            return;
        };
        facts.lockdown_mode = Some(match facts.lockdown_mode {
            Some(LockdownMode::Strict) => LockdownMode::Strict,
            Some(LockdownMode::Normal) if mode == LockdownMode::Disabled => LockdownMode::Normal,
            _ => mode,
        });
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn params(json: &str) -> Node {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
            panic!("object")
        };
        Node::from_json_params(&map, "test").expect("tree")
    }

    fn facts(method: EffectMethod, json: &str) -> Option<EffectFacts> {
        let this = MoRef::new("X", "x-1");
        classify_effect(method, &this, &params(json), false)
            .expect("classified")
            .map(|call| match call.body {
                GuardedBody::Effect(facts) => facts,
                other => panic!("{other:?}"),
            })
    }

    #[test]
    fn dcui_service_calls() {
        let stop = facts(EffectMethod::StopService, r#"{"id":"DCUI"}"#).expect("guarded");
        assert!(stop.dcui_stopped && stop.known);
        assert_eq!(stop.service_key.as_deref(), Some("DCUI"));
        assert!(
            facts(EffectMethod::UninstallService, r#"{"id":"DCUI"}"#)
                .expect("guarded")
                .dcui_stopped
        );
        for (policy, stopped) in [("off", true), ("automatic", true), ("on", false)] {
            let json = format!(r#"{{"id":"DCUI","policy":"{policy}"}}"#);
            let f = facts(EffectMethod::UpdateServicePolicy, &json);
            assert_eq!(
                f.map(|f| f.dcui_stopped),
                stopped.then_some(true),
                "{policy}"
            );
        }
        assert_eq!(facts(EffectMethod::StopService, r#"{"id":"ntpd"}"#), None);
        let this = MoRef::new("HostServiceSystem", "ss-21");
        let declared = classify_effect(
            EffectMethod::StopService,
            &this,
            &params(r#"{"id":"ntpd"}"#),
            true,
        )
        .expect("ok")
        .expect("declared");
        assert_eq!(declared.method, "StopService");
        for bad in [
            r#"{"id":"dcui"}"#,
            r#"{"id":"DCUI "}"#,
            r#"{}"#,
            r#"{"id":"DCUI","force":true}"#,
            r#"{"id":{"a":"DCUI"}}"#,
        ] {
            assert!(
                classify_effect(EffectMethod::StopService, &this, &params(bad), false).is_err(),
                "{bad}"
            );
        }
        assert!(
            classify_effect(
                EffectMethod::UpdateServicePolicy,
                &this,
                &params(r#"{"id":"DCUI","policy":"Off"}"#),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn dcui_access_option() {
        let f = facts(
            EffectMethod::UpdateOptions,
            r#"{"changedValue":[{"_typeName":"OptionValue","key":"DCUI.Access","value":{"_typeName":"string","_value":""}}]}"#,
        )
        .expect("guarded");
        assert!(f.dcui_access_changed);
        assert_eq!(f.dcui_access.as_deref(), Some(""));
        assert_eq!(f.option_keys, ["DCUI.Access"]);
        assert_eq!(
            facts(
                EffectMethod::UpdateOptions,
                r#"{"changedValue":[{"key":"Syslog.global.logHost","value":"udp://x"}]}"#
            ),
            None
        );
        let this = MoRef::new("OptionManager", "EsxHostAdvSettings-21");
        assert!(
            classify_effect(
                EffectMethod::UpdateOptions,
                &this,
                &params(r#"{"changedValue":[{"key":"dcui.access","value":"x"}]}"#),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn host_profiles_and_cluster_specs() {
        let f = facts(
            EffectMethod::ApplyHostConfig,
            r#"{"host":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-21"},
                "configSpec":{"_typeName":"HostConfigSpec","service":[{"serviceId":"DCUI","startupPolicy":"off","changeOperation":"edit"}]}}"#,
        )
        .expect("guarded");
        assert!(f.dcui_stopped);
        assert_eq!(f.hosts, ["host-21"]);
        let f = facts(
            EffectMethod::ApplyHostConfig,
            r#"{"configSpec":{"lockdownMode":"lockdownStrict"}}"#,
        )
        .expect("guarded");
        assert_eq!(f.lockdown_mode, Some(LockdownMode::Strict));
        assert_eq!(
            facts(
                EffectMethod::ApplyHostConfig,
                r#"{"configSpec":{"service":[{"serviceId":"DCUI","startupPolicy":"on","changeOperation":"edit"}]}}"#,
            ),
            None
        );
        let odd = facts(
            EffectMethod::ApplyHostConfig,
            r#"{"configSpec":{"genericConfig":[{"key":"x","value":"stop dcui"}]}}"#,
        )
        .expect("guarded");
        assert!(odd.dcui_stopped);
        let hci = facts(
            EffectMethod::ConfigureHci,
            r#"{"clusterSpec":{"hostConfigProfile":{"lockdownMode":"lockdownStrict"}}}"#,
        )
        .expect("guarded");
        assert_eq!(hci.lockdown_mode, Some(LockdownMode::Strict));
        assert_eq!(
            facts(
                EffectMethod::ConfigureHci,
                r#"{"clusterSpec":{"dvsSetting":[]}}"#
            ),
            None
        );
        let add = facts(
            EffectMethod::AddHost,
            r#"{"spec":{"hostName":"esx","password":"dcui-secret","lockdownMode":"lockdownNormal"},"asConnected":true}"#,
        )
        .expect("guarded");
        assert_eq!(add.lockdown_mode, Some(LockdownMode::Normal));
        assert!(!add.dcui_stopped);
        let this = MoRef::new("ClusterComputeResource", "domain-c7");
        for bad in [
            r#"{"spec":{"lockdownMode":"strict"}}"#,
            r#"{"spec":{"LockdownMode":"lockdownStrict"}}"#,
        ] {
            assert!(
                classify_effect(EffectMethod::AddHost, &this, &params(bad), false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn maintenance_routes() {
        let f = facts(
            EffectMethod::ApplyEntitiesConfig,
            r#"{"applyConfigSpecs":[{"entity":{"type":"HostSystem","value":"host-21"}}]}"#,
        )
        .expect("guarded");
        assert!(f.enters_maintenance);
        let this = MoRef::new("HostProfileManager", "HostProfileManager");
        let call = classify_effect(
            EffectMethod::ApplyEntitiesConfig,
            &this,
            &params(r#"{"applyConfigSpecs":[{"entity":{"type":"HostSystem","value":"host-21"}}]}"#),
            false,
        )
        .expect("ok")
        .expect("guarded");
        assert_eq!(call.target, MoRef::new("HostSystem", "host-21"));
        let run = facts(EffectMethod::RunScheduledTask, "{}").expect("guarded");
        assert!(!run.known && run.enters_maintenance && run.dcui_stopped);
        let cemm = facts(
            EffectMethod::ClusterEnterMaintenanceMode,
            r#"{"host":[{"type":"HostSystem","value":"host-21"}]}"#,
        )
        .expect("guarded");
        assert!(!cemm.enters_maintenance);
        assert_eq!(cemm.hosts, ["host-21"]);
        assert!(
            facts(EffectMethod::CreateAgency, r#"{"agencyConfigInfo":{}}"#)
                .expect("guarded")
                .enters_maintenance
        );
    }

    #[test]
    fn names_and_positional_arguments() {
        assert_eq!(
            EffectMethod::from_vmodl("vim.host.ServiceSystem.stop"),
            Some(EffectMethod::StopService)
        );
        assert_eq!(
            EffectMethod::from_vmodl("vim.option.OptionManager.updateValues"),
            Some(EffectMethod::UpdateOptions)
        );
        assert_eq!(EffectMethod::from_vmodl("vim.HostSystem.reboot"), None);
        assert_eq!(EffectMethod::UpdateAgency.action(), "UpdateAgency");
        assert_eq!(
            EffectMethod::from_wire("Agency_Enable").map(EffectMethod::action),
            Some("Agency_Enable")
        );
        assert_eq!(
            EffectMethod::from_wire("Update"),
            Some(EffectMethod::UpdateAgency)
        );
        let text = |t: &str| Node::Text {
            text: t.into(),
            mo_type: None,
        };
        let node = positional_params(
            EffectMethod::UpdateServicePolicy,
            vec![Some(text("DCUI")), Some(text("off"))],
        )
        .expect("mapped");
        let this = MoRef::new("HostServiceSystem", "ss");
        let call = classify_effect(EffectMethod::UpdateServicePolicy, &this, &node, false)
            .expect("ok")
            .expect("guarded");
        assert!(matches!(call.body, GuardedBody::Effect(ref f) if f.dcui_stopped));
        assert!(positional_params(EffectMethod::StopService, vec![None, None]).is_none());
    }
}
