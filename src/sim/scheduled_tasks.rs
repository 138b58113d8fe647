//! Stored calls: scheduled tasks (`ScheduledTaskManager.CreateScheduledTask` /
//! `CreateObjectScheduledTask`, the task's `info`, `ScheduledTask.RunScheduledTask`) and DRS
//! recommendations (`ClusterComputeResource.ClusterEnterMaintenanceMode` files them, the
//! cluster's `recommendation` lists them, `ApplyRecommendation(key)` applies one).
//!
//! A scheduled task keeps its spec as VI/JSON, so the simulator takes new ones over VI/JSON
//! only; running one calls its `MethodAction` on its object, with the arguments in the
//! method's parameter order. A maintenance recommendation (`hostMaint`) moves the host's
//! powered-on VMs to another host and puts the host into maintenance mode when applied.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::vsphere::fault::VimFault;

use super::args::Args;
use super::faults;
use super::inventory::Inventory;
use super::value::{MoRef, VimValue, now_rfc3339};

/// Parameter names, in order, of the methods a stored `MethodAction` may call.
const ACTION_PARAMS: &[(&str, &[&str])] = &[
    (
        "EnterMaintenanceMode_Task",
        &["timeout", "evacuatePoweredOffVms", "maintenanceSpec"],
    ),
    ("ExitMaintenanceMode_Task", &["timeout"]),
    ("ChangeLockdownMode", &["mode"]),
    ("PowerOnVM_Task", &["host"]),
    ("PowerOffVM_Task", &[]),
];

/// One scheduled task.
#[derive(Debug, Clone)]
struct ScheduledTask {
    task_object: MoRef,
    spec: Map<String, Json>,
    created_by: String,
    state: &'static str,
    error: Option<String>,
    prev_run: Option<String>,
}

/// One pending DRS recommendation.
#[derive(Debug, Clone)]
struct Recommendation {
    key: String,
    host: String,
    /// (VM, destination host) pairs.
    migrations: Vec<(String, String)>,
}

/// Scheduled tasks and DRS recommendations.
#[derive(Debug, Default)]
pub(crate) struct StoredCalls {
    tasks: BTreeMap<String, ScheduledTask>,
    recommendations: Vec<Recommendation>,
    serial: u32,
}

impl StoredCalls {
    /// Whether `id` is a scheduled task.
    pub(crate) fn is_task(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    fn next_serial(&mut self) -> u32 {
        self.serial += 1;
        100 + self.serial
    }
}

/// `CreateScheduledTask(obj, spec)` / `CreateObjectScheduledTask(obj, spec)`: stores the task.
pub(crate) fn create(inv: &mut Inventory, args: Args<'_>, user: &str) -> Result<VimValue, VimFault> {
    let Args::Json(params) = args else {
        return Err(faults::invalid_request(
            "the simulator keeps scheduled tasks created over VI/JSON only",
        ));
    };
    let object = args
        .moref_field("obj")
        .ok_or_else(|| faults::invalid_argument("obj"))?;
    let object = inv
        .lookup(&object.value, None)
        .ok_or_else(|| faults::not_found(&object))?;
    let Some(Json::Object(spec)) = params.get("spec") else {
        return Err(faults::invalid_argument("spec"));
    };
    let action_name = spec
        .get("action")
        .filter(|a| a.get("_typeName").and_then(Json::as_str) == Some("MethodAction"))
        .and_then(|a| a.get("name"))
        .and_then(Json::as_str)
        .ok_or_else(|| faults::invalid_argument("spec.action"))?;
    if params_of(action_name).is_none() {
        return Err(faults::invalid_argument("spec.action.name"));
    }
    if !spec.get("scheduler").is_some_and(Json::is_object) {
        return Err(faults::invalid_argument("spec.scheduler"));
    }
    let id = format!("schedule-{}", inv.stored.next_serial());
    inv.stored.tasks.insert(
        id.clone(),
        ScheduledTask {
            task_object: object,
            spec: spec.clone(),
            created_by: user.to_owned(),
            state: "scheduled",
            error: None,
            prev_run: None,
        },
    );
    Ok(VimValue::moref("ScheduledTask", id))
}

fn params_of(method: &str) -> Option<&'static [&'static str]> {
    ACTION_PARAMS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, params)| *params)
}

/// The scheduled task's `info` (`ScheduledTaskInfo`, VI/JSON form).
pub(crate) fn info(inv: &Inventory, id: &str) -> Option<VimValue> {
    let task = inv.stored.tasks.get(id)?;
    let moref = |r: &MoRef| json!({"_typeName": "ManagedObjectReference", "type": r.mo_type, "value": r.value});
    let mut info = Map::new();
    info.insert("_typeName".into(), "ScheduledTaskInfo".into());
    for field in ["name", "description", "enabled", "scheduler", "action"] {
        if let Some(value) = task.spec.get(field) {
            info.insert(field.into(), value.clone());
        }
    }
    info.insert(
        "scheduledTask".into(),
        moref(&MoRef::new("ScheduledTask", id)),
    );
    info.insert("entity".into(), moref(&task.task_object));
    info.insert("taskObject".into(), moref(&task.task_object));
    info.insert("lastModifiedUser".into(), task.created_by.clone().into());
    info.insert("state".into(), task.state.into());
    if let Some(prev) = &task.prev_run {
        info.insert("prevRunTime".into(), prev.clone().into());
    }
    if let Some(error) = &task.error {
        info.insert(
            "error".into(),
            json!({"_typeName": "LocalizedMethodFault", "localizedMessage": error}),
        );
    }
    Some(VimValue::Raw(Json::Object(info)))
}

/// What `RunScheduledTask` on `id` calls: its object, method and named parameters.
pub(crate) fn action_call(inv: &Inventory, id: &str) -> Result<(MoRef, String, Json), VimFault> {
    let task = inv
        .stored
        .tasks
        .get(id)
        .ok_or_else(|| faults::not_found(&MoRef::new("ScheduledTask", id)))?;
    let action = task.spec.get("action").cloned().unwrap_or(Json::Null);
    let name = action
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let names = params_of(&name).ok_or_else(|| faults::invalid_argument("action.name"))?;
    let values = match action.get("argument") {
        Some(Json::Array(items)) => items.clone(),
        Some(Json::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    if values.len() > names.len() {
        return Err(faults::invalid_argument("action.argument"));
    }
    let mut params = Map::new();
    for (name, argument) in names.iter().zip(values) {
        // A MethodActionArgument's value: a primitive is `{"_typeName": "int", "_value": 300}`.
        let value = match argument.get("value") {
            Some(Json::Object(v)) if v.contains_key("_value") => v["_value"].clone(),
            Some(v) => v.clone(),
            None => continue,
        };
        params.insert((*name).to_owned(), value);
    }
    Ok((task.task_object.clone(), name, Json::Object(params)))
}

/// Records the end of a run of `id`: `success`, or `error` with the fault's message.
pub(crate) fn record_run(inv: &mut Inventory, id: &str, fault: Option<&VimFault>) {
    if let Some(task) = inv.stored.tasks.get_mut(id) {
        task.prev_run = Some(now_rfc3339());
        task.state = if fault.is_some() { "error" } else { "success" };
        task.error = fault.map(|f| f.text.clone());
    }
}

/// `ClusterEnterMaintenanceMode(host[], option[])`: files one `hostMaint` recommendation per
/// host and returns them (`ClusterEnterMaintenanceResult`).
pub(crate) fn enter_maintenance_recommendations(
    inv: &mut Inventory,
    args: Args<'_>,
) -> Result<VimValue, VimFault> {
    let hosts: Vec<MoRef> = args.list("host").iter().filter_map(Args::moref).collect();
    if hosts.is_empty() {
        return Err(faults::invalid_argument("host"));
    }
    let mut filed = Vec::new();
    for host in hosts {
        let state = inv.host(&host.value).ok_or_else(|| faults::not_found(&host))?;
        if state.in_maintenance {
            return Err(faults::invalid_state());
        }
        let destination = inv
            .hosts
            .iter()
            .find(|h| h.id != host.value && !h.in_maintenance)
            .map(|h| h.id.clone())
            .ok_or_else(faults::invalid_state)?;
        let migrations = inv
            .vms
            .iter()
            .filter(|vm| vm.host == host.value && vm.powered_on)
            .map(|vm| (vm.id.clone(), destination.clone()))
            .collect();
        let key = inv.stored.next_serial().to_string();
        let recommendation = Recommendation {
            key,
            host: host.value.clone(),
            migrations,
        };
        filed.push(recommendation_value(&recommendation));
        inv.stored.recommendations.push(recommendation);
    }
    Ok(VimValue::Data(
        "ClusterEnterMaintenanceResult",
        vec![(
            "recommendations",
            VimValue::Array("ClusterRecommendation", filed),
        )],
    ))
}

/// The cluster's `recommendation` property.
pub(crate) fn recommendations(inv: &Inventory) -> VimValue {
    VimValue::Array(
        "ClusterRecommendation",
        inv.stored
            .recommendations
            .iter()
            .map(recommendation_value)
            .collect(),
    )
}

fn recommendation_value(r: &Recommendation) -> VimValue {
    let actions = r
        .migrations
        .iter()
        .map(|(vm, to)| {
            VimValue::Data(
                "ClusterMigrationAction",
                vec![
                    ("type", VimValue::str("migration")),
                    ("target", VimValue::moref("VirtualMachine", vm)),
                    (
                        "drsMigration",
                        VimValue::Data(
                            "ClusterDrsMigration",
                            vec![
                                ("key", VimValue::str(&r.key)),
                                ("time", VimValue::DateTime(now_rfc3339())),
                                ("vm", VimValue::moref("VirtualMachine", vm)),
                                ("source", VimValue::moref("HostSystem", &r.host)),
                                ("destination", VimValue::moref("HostSystem", to)),
                            ],
                        ),
                    ),
                ],
            )
            .any()
        })
        .collect();
    VimValue::Data(
        "ClusterRecommendation",
        vec![
            ("key", VimValue::str(&r.key)),
            ("type", VimValue::str("V1")),
            ("time", VimValue::DateTime(now_rfc3339())),
            ("rating", VimValue::Int(5)),
            ("reason", VimValue::str("hostMaint")),
            (
                "reasonText",
                VimValue::str("Host is entering maintenance mode"),
            ),
            ("target", VimValue::moref("HostSystem", &r.host)),
            ("action", VimValue::Array("ClusterAction", actions)),
        ],
    )
}

/// `ApplyRecommendation(key)`: migrates the VMs and puts the host into maintenance mode.
pub(crate) fn apply_recommendation(inv: &mut Inventory, args: Args<'_>) -> Result<(), VimFault> {
    let key = args
        .str_field("key")
        .ok_or_else(|| faults::invalid_argument("key"))?;
    let at = inv
        .stored
        .recommendations
        .iter()
        .position(|r| r.key == key)
        .ok_or_else(|| faults::invalid_argument("key"))?;
    let recommendation = inv.stored.recommendations.remove(at);
    for (vm, to) in &recommendation.migrations {
        if let Some(state) = inv.vms.iter_mut().find(|v| &v.id == vm) {
            state.host = to.clone();
        }
    }
    if let Some(host) = inv.host_mut(&recommendation.host) {
        host.in_maintenance = true;
    }
    Ok(())
}
