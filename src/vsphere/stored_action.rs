//! What a stored call does, from vCenter's answer to a look-up (PROTOCOL.md §8):
//! `RunScheduledTask` runs the task's stored `info.action`, `ApplyRecommendation` applies a
//! stored DRS recommendation. The gateway asks vCenter with the caller's own session
//! (VI/JSON `GET /sdk/vim25/{release}/ScheduledTask/{moId}/info`, or
//! `.../ClusterComputeResource/{moId}/recommendation`), then decides on what these functions
//! return instead of the worst-case facts the classifier gives the call. Anything that cannot
//! be read is refused: the look-up fails closed.

use serde_json::{Map, Value, json};

use super::classify::Refusal;
use super::effects::EffectFacts;
use super::guarded::{CarrierKind, GuardedMethods};
use super::json_body::{parse_carrier_body, parse_strict};
use super::operation::{GuardedBody, GuardedCall, MoRef, Route};

/// The VI/JSON path that reads a scheduled task's `info`.
pub fn scheduled_task_info_path(release: &str, task: &str) -> String {
    format!(
        "/sdk/vim25/{}/ScheduledTask/{}/info",
        encode_segment(release),
        encode_segment(task)
    )
}

/// The VI/JSON path that reads a cluster's current DRS recommendations.
pub fn recommendations_path(release: &str, cluster: &str) -> String {
    format!(
        "/sdk/vim25/{}/ClusterComputeResource/{}/recommendation",
        encode_segment(release),
        encode_segment(cluster)
    )
}

/// One path segment, percent-encoded except for RFC 3986 unreserved characters (moIds are
/// opaque and may hold `[`, `]`, `/`, ...).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What a scheduled task's `info` says it runs, for people: `EnterMaintenanceMode_Task on
/// HostSystem host-21`, or `no action`. Unreadable parts are named as such.
pub fn describe_scheduled_action(info: &[u8]) -> String {
    let Ok(Value::Object(info)) = parse_strict(info) else {
        return "an unreadable ScheduledTaskInfo".to_owned();
    };
    let Some(action) = info.get("action") else {
        return "no action".to_owned();
    };
    let name = action
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed action)");
    match info
        .get("taskObject")
        .map(|o| (o.get("type"), o.get("value")))
    {
        Some((Some(Value::String(ty)), Some(Value::String(id)))) => format!("{name} on {ty} {id}"),
        _ => name.to_owned(),
    }
}

/// The guarded call `RunScheduledTask` on `task` makes, from the task's `ScheduledTaskInfo`
/// (JSON); `None` when its action is not guarded.
///
/// Only `taskObject`, `scheduler` and `action` are read, with the same strict rules as a
/// `CreateScheduledTask` carrying that action.
pub fn run_scheduled_task_call(
    task: &MoRef,
    info: &[u8],
    guarded: &GuardedMethods,
) -> Result<Option<GuardedCall>, Refusal> {
    let unreadable = |why: &str| {
        Refusal::invalid_request(format!(
            "vcguard could not read what scheduled task {} does ({why}); refused",
            task.value
        ))
    };
    let Ok(Value::Object(info)) = parse_strict(info) else {
        return Err(unreadable("not a JSON object"));
    };
    let Some(action) = info.get("action") else {
        // A task without an action does nothing to hosts.
        return Ok(None);
    };
    let object = info
        .get("taskObject")
        .ok_or_else(|| unreadable("no taskObject"))?;
    let mut spec = Map::new();
    spec.insert("action".into(), action.clone());
    if let Some(scheduler) = info.get("scheduler") {
        spec.insert("scheduler".into(), scheduler.clone());
    }
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("_typeName");
    }
    let carrier = json!({ "obj": object, "spec": Value::Object(spec) });
    let bytes = serde_json::to_vec(&carrier).map_err(|e| unreadable(&e.to_string()))?;
    let call = parse_carrier_body(
        "CreateObjectScheduledTask",
        CarrierKind::ScheduledTask {
            target_param: Some("obj"),
        },
        &MoRef::new("ScheduledTaskManager", "ScheduledTaskManager"),
        false,
        Some(&bytes),
        guarded,
    )
    .map_err(Refusal::from)?;
    Ok(call.map(|call| GuardedCall {
        route: Route::RunScheduledTask {
            task: task.value.clone(),
        },
        via: "RunScheduledTask".to_owned(),
        ..call
    }))
}

/// DRS recommendation reasons that only move virtual machines between hosts.
const MIGRATION_ONLY_REASONS: [&str; 4] = [
    "fairnessCpuAvg",
    "fairnessMemAvg",
    "jointAffin",
    "antiAffin",
];

/// The guarded call `ApplyRecommendation(key)` on `cluster` makes, from the cluster's
/// `recommendation` property (JSON array of `ClusterRecommendation`).
///
/// A recommendation whose reason only migrates VMs does not enter maintenance; any other
/// reason, or an action that is not a VM migration, counts as entering maintenance. A key
/// vCenter does not list is refused.
pub fn apply_recommendation_call(
    cluster: &MoRef,
    key: &str,
    recommendations: &[u8],
) -> Result<GuardedCall, Refusal> {
    let unreadable = |why: &str| {
        Refusal::invalid_request(format!(
            "vcguard could not read DRS recommendation '{key}' of {} ({why}); refused",
            cluster.value
        ))
    };
    let Ok(Value::Array(list)) = parse_strict(recommendations) else {
        return Err(unreadable("not a JSON array"));
    };
    let found = list
        .iter()
        .find(|r| r.get("key").and_then(Value::as_str) == Some(key))
        .ok_or_else(|| unreadable("vCenter does not list it"))?;
    let reason = found.get("reason").and_then(Value::as_str).unwrap_or("");
    let migrations_only = found
        .get("action")
        .and_then(Value::as_array)
        .is_some_and(|actions| {
            actions.iter().all(|a| {
                a.get("_typeName").and_then(Value::as_str) == Some("ClusterMigrationAction")
            })
        });
    let hosts = match found.get("target").map(|t| (t.get("type"), t.get("value"))) {
        Some((Some(Value::String(ty)), Some(Value::String(id)))) if ty == "HostSystem" => {
            vec![id.clone()]
        }
        _ => Vec::new(),
    };
    let facts = EffectFacts {
        known: true,
        enters_maintenance: !(MIGRATION_ONLY_REASONS.contains(&reason) && migrations_only),
        hosts,
        recommendation: Some(key.to_owned()),
        recommendation_reason: Some(reason.to_owned()),
        ..EffectFacts::default()
    };
    Ok(GuardedCall {
        method: "ApplyRecommendation".to_owned(),
        target: cluster.clone(),
        body: GuardedBody::Effect(facts),
        route: Route::Direct,
        via: "ApplyRecommendation".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> MoRef {
        MoRef::new("ScheduledTask", "schedule-7")
    }

    #[test]
    fn a_stored_maintenance_task_is_the_guarded_call() {
        let info = br#"{"_typeName":"ScheduledTaskInfo","name":"nightly","enabled":true,
            "taskObject":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-21"},
            "scheduler":{"_typeName":"DailyTaskScheduler","hour":2,"minute":0,"interval":1},
            "action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task",
              "argument":[{"_typeName":"MethodActionArgument","value":{"_typeName":"int","_value":300}}]}}"#;
        let call = run_scheduled_task_call(&task(), info, &GuardedMethods::new())
            .expect("read")
            .expect("guarded");
        assert_eq!(call.method, "EnterMaintenanceMode_Task");
        assert_eq!(call.target, MoRef::new("HostSystem", "host-21"));
        assert_eq!(call.route.name(), "run_scheduled_task");
        assert_eq!(call.via, "RunScheduledTask");
        assert!(matches!(call.body, GuardedBody::EnterMaintenanceMode(ref b) if b.timeout == 300));
    }

    #[test]
    fn unguarded_and_unreadable_tasks() {
        let power_on = br#"{"taskObject":{"type":"VirtualMachine","value":"vm-1"},
            "action":{"_typeName":"MethodAction","name":"PowerOnVM_Task","argument":[]}}"#;
        assert_eq!(
            run_scheduled_task_call(&task(), power_on, &GuardedMethods::new()),
            Ok(None)
        );
        for bad in [
            &b"[]"[..],
            b"{\"action\":{\"_typeName\":\"MethodAction\",\"name\":\"EnterMaintenanceMode_Task\"}}",
            b"{\"taskObject\":{\"type\":\"HostSystem\",\"value\":\"h\"},\"action\":{\"_typeName\":\"MethodAction\",\"name\":\"entermaintenancemode_task\"}}",
            b"not json",
        ] {
            assert!(
                run_scheduled_task_call(&task(), bad, &GuardedMethods::new()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn look_up_paths_encode_the_mo_id_and_actions_are_described() {
        assert_eq!(
            scheduled_task_info_path("8.0.3.0", "schedule-[7]"),
            "/sdk/vim25/8.0.3.0/ScheduledTask/schedule-%5B7%5D/info"
        );
        assert_eq!(
            recommendations_path("uA046D008", "domain/c7"),
            "/sdk/vim25/uA046D008/ClusterComputeResource/domain%2Fc7/recommendation"
        );
        assert_eq!(
            describe_scheduled_action(
                br#"{"taskObject":{"type":"HostSystem","value":"host-21"},"action":{"name":"EnterMaintenanceMode_Task"}}"#
            ),
            "EnterMaintenanceMode_Task on HostSystem host-21"
        );
        assert_eq!(describe_scheduled_action(b"{}"), "no action");
        assert_eq!(
            describe_scheduled_action(b"[]"),
            "an unreadable ScheduledTaskInfo"
        );
    }

    #[test]
    fn recommendations() {
        let cluster = MoRef::new("ClusterComputeResource", "domain-c7");
        let list = br#"[
            {"_typeName":"ClusterRecommendation","key":"1","reason":"fairnessCpuAvg",
             "action":[{"_typeName":"ClusterMigrationAction"}]},
            {"_typeName":"ClusterRecommendation","key":"2","reason":"hostMaint",
             "action":[{"_typeName":"ClusterMigrationAction"}]}]"#;
        let facts = |key: &str| match apply_recommendation_call(&cluster, key, list)
            .expect("found")
            .body
        {
            GuardedBody::Effect(f) => f,
            other => panic!("{other:?}"),
        };
        assert!(!facts("1").enters_maintenance);
        assert!(facts("2").enters_maintenance);
        assert_eq!(
            facts("2").recommendation_reason.as_deref(),
            Some("hostMaint")
        );
        assert_eq!(facts("2").recommendation.as_deref(), Some("2"));
        assert!(apply_recommendation_call(&cluster, "3", list).is_err());
        assert!(apply_recommendation_call(&cluster, "1", b"{}").is_err());
    }
}
