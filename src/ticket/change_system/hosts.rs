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

