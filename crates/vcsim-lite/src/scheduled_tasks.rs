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

use vsphere_wire::fault::VimFault;

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
    /// When DRS made it.
    time: String,
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
pub(crate) fn create(
    inv: &mut Inventory,
    args: Args<'_>,
    user: &str,
) -> Result<VimValue, VimFault> {
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
        let state = inv
            .host(&host.value)
            .ok_or_else(|| faults::not_found(&host))?;
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
            time: now_rfc3339(),
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
                                ("time", VimValue::DateTime(r.time.clone())),
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
            ("time", VimValue::DateTime(r.time.clone())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn create_task(inv: &mut Inventory, object: (&str, &str), action: Json) -> String {
        let params = json!({
            "obj": {"_typeName": "ManagedObjectReference", "type": object.0, "value": object.1},
            "spec": {"_typeName": "ScheduledTaskSpec", "name": "n", "enabled": true,
                "scheduler": {"_typeName": "DailyTaskScheduler", "hour": 2, "minute": 0, "interval": 1},
                "action": action},
        });
        match create(inv, Args::Json(&params), "VSPHERE.LOCAL\\Administrator") {
            Ok(VimValue::MoRef(task)) => task.value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stored_task_keeps_its_action_and_runs_it_with_named_parameters() {
        let mut inv = Inventory::default();
        let action = json!({"_typeName": "MethodAction", "name": "EnterMaintenanceMode_Task",
            "argument": [{"_typeName": "MethodActionArgument", "value": {"_typeName": "int", "_value": 300}},
                         {"_typeName": "MethodActionArgument", "value": {"_typeName": "boolean", "_value": true}}]});
        let id = create_task(&mut inv, ("HostSystem", "host-21"), action.clone());
        assert_eq!(inv.object_type(&id, None), Some("ScheduledTask"));
        let stored = info(&inv, &id).expect("info").to_json();
        assert_eq!(stored["action"], action);
        assert_eq!(stored["taskObject"]["value"], "host-21");
        assert_eq!(stored["state"], "scheduled");
        let (target, method, params) = action_call(&inv, &id).expect("action");
        assert_eq!(target, MoRef::new("HostSystem", "host-21"));
        assert_eq!(method, "EnterMaintenanceMode_Task");
        assert_eq!(
            params,
            json!({"timeout": 300, "evacuatePoweredOffVms": true})
        );
        record_run(&mut inv, &id, Some(&faults::invalid_state()));
        let ran = info(&inv, &id).expect("info").to_json();
        assert_eq!(ran["state"], "error");
        assert!(ran["prevRunTime"].is_string());
    }

    #[test]
    fn tasks_the_simulator_cannot_run_are_refused_at_creation() {
        let mut inv = Inventory::default();
        let params = json!({
            "obj": {"_typeName": "ManagedObjectReference", "type": "HostSystem", "value": "host-21"},
            "spec": {"_typeName": "ScheduledTaskSpec", "name": "n", "enabled": true,
                "scheduler": {"_typeName": "OnceTaskScheduler"},
                "action": {"_typeName": "MethodAction", "name": "RebootHost_Task"}},
        });
        assert!(create(&mut inv, Args::Json(&params), "u").is_err());
        let missing = json!({"obj": {"type": "HostSystem", "value": "host-99"}, "spec": {}});
        assert!(create(&mut inv, Args::Json(&missing), "u").is_err());
        assert!(action_call(&inv, "schedule-1").is_err());
    }

    #[test]
    fn a_maintenance_recommendation_evacuates_and_enters_maintenance_when_applied() {
        let mut inv = Inventory::default();
        let args = json!({"host": [{"_typeName": "ManagedObjectReference", "type": "HostSystem", "value": "host-21"}]});
        let result = enter_maintenance_recommendations(&mut inv, Args::Json(&args))
            .expect("recommended")
            .to_json();
        let listed = recommendations(&inv).to_json();
        assert_eq!(listed, result["recommendations"]);
        assert_eq!(listed[0]["reason"], "hostMaint");
        assert_eq!(
            listed[0]["action"][0]["_typeName"],
            "ClusterMigrationAction"
        );
        assert_eq!(listed[0]["action"][0]["target"]["value"], "vm-31");
        assert_eq!(inv.host_in_maintenance("host-21"), Some(false));
        let key = json!({"key": listed[0]["key"]});
        apply_recommendation(&mut inv, Args::Json(&key)).expect("applied");
        assert_eq!(inv.host_in_maintenance("host-21"), Some(true));
        assert_ne!(inv.vm("vm-31").map(|vm| vm.host.as_str()), Some("host-21"));
        assert_eq!(recommendations(&inv).to_json(), json!([]));
        assert!(apply_recommendation(&mut inv, Args::Json(&key)).is_err());
    }

    #[test]
    fn a_stored_spec_is_written_as_soap() {
        let mut inv = Inventory::default();
        let action = json!({"_typeName": "MethodAction", "name": "ChangeLockdownMode",
            "argument": [{"_typeName": "MethodActionArgument", "value": {"_typeName": "HostLockdownMode", "_value": "lockdownNormal"}}]});
        let id = create_task(&mut inv, ("HostAccessManager", "ham-21"), action);
        let mut soap = String::new();
        info(&inv, &id)
            .expect("info")
            .any()
            .write_soap("returnval", &mut soap);
        for part in [
            r#"<returnval xsi:type="ScheduledTaskInfo">"#,
            r#"<action xsi:type="MethodAction"><name>ChangeLockdownMode</name><argument xsi:type="MethodActionArgument"><value xsi:type="HostLockdownMode">lockdownNormal</value></argument></action>"#,
            r#"<hour>2</hour>"#,
            r#"<taskObject type="HostAccessManager">ham-21</taskObject>"#,
        ] {
            assert!(soap.contains(part), "{part} in {soap}");
        }
    }
}
