//! The repository's `policies/` (schema, entities, policies) built into the binary, so that
//! `vcguard demo` works from any directory.

use std::io;
use std::path::Path;

/// Each shipped policy-set file: its name in `policies/` and its contents.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "baseline-permit.cedar",
        include_str!("../policies/baseline-permit.cedar"),
    ),
    (
        "carrier-outlives-ticket.cedar",
        include_str!("../policies/carrier-outlives-ticket.cedar"),
    ),
    (
        "dcui-access-needs-ticket.cedar",
        include_str!("../policies/dcui-access-needs-ticket.cedar"),
    ),
    (
        "effect-unknown.cedar",
        include_str!("../policies/effect-unknown.cedar"),
    ),
    ("entities.json", include_str!("../policies/entities.json")),
    (
        "lockdown-disable-needs-approval.cedar",
        include_str!("../policies/lockdown-disable-needs-approval.cedar"),
    ),
    (
        "lockdown-no-strict.cedar",
        include_str!("../policies/lockdown-no-strict.cedar"),
    ),
    (
        "maintenance-needs-ticket.cedar",
        include_str!("../policies/maintenance-needs-ticket.cedar"),
    ),
    (
        "schema.cedarschema",
        include_str!("../policies/schema.cedarschema"),
    ),
    (
        "vsan-no-action-monitor.cedar",
        include_str!("../policies/vsan-no-action-monitor.cedar"),
    ),
];

/// Writes the shipped files into `dir` (created if missing), ready for `PolicySet::load`.
pub(crate) fn write_to(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySet;

    fn repository_policies() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    #[test]
    fn every_file_of_the_shipped_policy_set_is_embedded_unchanged() {
        use crate::policy::{ENTITIES_FILE, POLICY_EXTENSION, SCHEMA_FILE};
        let mut on_disk: Vec<String> = std::fs::read_dir(repository_policies())
            .expect("policies/ readable")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|n| n == SCHEMA_FILE || n == ENTITIES_FILE || n.ends_with(POLICY_EXTENSION))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = FILES.iter().map(|(name, _)| *name).collect();
        assert_eq!(embedded, on_disk, "add new files in policies/ to FILES");
        for (name, text) in FILES {
            let disk = std::fs::read_to_string(repository_policies().join(name)).expect("read");
            assert_eq!(*text, disk, "{name}");
        }
    }

    #[test]
    fn the_embedded_copy_loads_as_the_same_policy_set() {
        let dir = tempfile::tempdir().expect("dir");
        write_to(dir.path()).expect("write");
        let embedded = PolicySet::load(dir.path()).expect("embedded set loads");
        let shipped = PolicySet::load(&repository_policies()).expect("shipped set loads");
        assert_eq!(embedded.hash(), shipped.hash());
        assert_eq!(embedded.policy_ids(), shipped.policy_ids());
    }
}
