//! The host names a call's target lives on, from the `name` attribute `entities.json` gives
//! each `HostSystem` (the vCenter `HostSystem.name`).

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, EvalResult};

use crate::policy::{NAMESPACE, PolicySet};

/// The names of the hosts the target (`mo_type`, `mo_id`) is on: the host itself, or the hosts
/// `entities.json` places the object under. Empty when any of those hosts has no `name`, so the
/// host check fails closed rather than checking only some of them.
pub fn target_host_names(set: &PolicySet, mo_type: &str, mo_id: &str) -> Vec<String> {
    let hosts = if set.resource_type_name(mo_type) == "HostSystem" {
        vec![mo_id.to_owned()]
    } else {
        set.hosts_of(mo_type, mo_id)
    };
    let names: Option<Vec<String>> = hosts.iter().map(|host| host_name(set, host)).collect();
    names.unwrap_or_default()
}

/// The `name` attribute of `HostSystem` `mo_id` in the entities, if it has one.
pub fn host_name(set: &PolicySet, mo_id: &str) -> Option<String> {
    let type_name = EntityTypeName::from_str(&format!("{NAMESPACE}::HostSystem")).ok()?;
    let uid = EntityUid::from_type_name_and_id(type_name, EntityId::new(mo_id));
    match set.entities.get(&uid)?.attr("name")? {
        Ok(EvalResult::String(name)) if !name.is_empty() => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::{PolicyRequest, Principal, Resource};
    use crate::ticket::ChangeVerdict;

    fn shipped() -> PolicySet {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load(&dir).unwrap_or_else(|e| panic!("shipped policies load:\n{e}"))
    }

    #[test]
    fn host_names_come_from_the_shipped_entities() {
        let set = shipped();
        assert_eq!(
            host_name(&set, "host-21").as_deref(),
            Some("esx-21.example.test")
        );
        assert_eq!(host_name(&set, "host-99"), None);
        assert_eq!(
            target_host_names(&set, "HostSystem", "host-22"),
            vec!["esx-22.example.test".to_owned()]
        );
        assert_eq!(
            target_host_names(&set, "HostAccessManager", "ham-23"),
            vec!["esx-23.example.test".to_owned()]
        );
        assert!(target_host_names(&set, "HostSystem", "host-99").is_empty());
        assert!(target_host_names(&set, "Cluster", "domain-c7").is_empty());
    }

    /// The verdict's fields are declared in the shipped schema and decide the shipped
    /// `maintenance-needs-ticket` policy.
    fn decide(verdict: &ChangeVerdict) -> crate::policy::Decision {
        let mut ticket = json!({"id": "CHG0012345", "kind": "pattern", "verified": true,
                                "covers_target": true, "covers_action": true});
        verdict.apply_to(&mut ticket);
        shipped().evaluate(&PolicyRequest {
            principal: Principal::User {
                name: "VSPHERE.LOCAL\\Administrator".into(),
                groups: vec!["platform-team".into()],
            },
            action: "EnterMaintenanceMode_Task".into(),
            resource: Resource::new("HostSystem", "host-21"),
            context: json!({
                "protocol": "json", "indirect": false, "route": "direct",
                "client_ip": "127.0.0.1", "hour_utc": 10, "weekday": 1,
                "body": {"timeout": 0}, "ticket": ticket
            }),
        })
    }

    #[test]
    fn verdicts_fit_the_shipped_schema_and_policy() {
        let mut verdict = ChangeVerdict {
            id: "CHG0012345".into(),
            verified: true,
            covers_target: true,
            covers_action: true,
            change_state: Some("implement".into()),
            window_start: Some(1_796_090_400),
            window_end: Some(1_796_104_800),
            reason: None,
            source: "servicenow",
            cached: false,
        };
        let allowed = decide(&verdict);
        assert!(allowed.allowed && allowed.errors.is_empty(), "{allowed:?}");
        verdict.covers_target = false;
        verdict.reason = Some("host esx-21 is not a configuration item of CHG0012345".into());
        let denied = decide(&verdict);
        assert!(!denied.allowed && denied.errors.is_empty(), "{denied:?}");
        assert!(
            denied
                .determining
                .iter()
                .any(|hit| hit.id == "maintenance-needs-ticket"),
            "{denied:?}"
        );
    }
}
