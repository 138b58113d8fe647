//! Cedar policy engine: loads `policies/` (schema, policies, entities), decides on guarded
//! calls, supports atomic reloads, and runs the policy test cases.
//!
//! The rules cannot be silently wrong: every policy needs an `@id`, both the enforced and the
//! monitor set are validated strictly against the schema (warnings count as errors), a request
//! whose context does not match the schema is denied, and any evaluation error denies (Cedar
//! itself would skip an erring policy, which for a `forbid` would be a silent allow).

mod checked;
mod compiled;
mod context;
mod decision;
mod engine;
mod error;
mod index;
#[cfg(test)]
mod index_tests;
mod kept;
mod load;
mod request;
mod request_entities;
mod scopes;
mod store;
#[cfg(test)]
mod synthetic;
mod testcases;

#[cfg(test)]
mod tests;

pub use decision::{ApprovalNeed, Decision, PolicyHit, explain};
pub use engine::PolicySet;
pub use error::{LoadError, LoadErrors};
pub use request::{
    EntityRefError, PolicyRequest, Principal, Resource, parse_principal, parse_resource,
};
pub use store::{PolicySnapshot, PolicyStore, ReloadOutcome, guarded_methods};
pub use testcases::{CaseResult, TestReport, run_tests};

/// The Cedar namespace of the schema's entity types and actions.
pub const NAMESPACE: &str = "VSphere";
/// The schema file inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The optional entities file inside a policy directory.
pub const ENTITIES_FILE: &str = "entities.json";
/// The extension of policy files.
pub const POLICY_EXTENSION: &str = ".cedar";
/// The sub-directory of policy test cases (`*.toml`).
pub const TESTS_DIR: &str = "tests";
/// The entity type that targets of undeclared managed-object types are evaluated as.
pub const MANAGED_OBJECT_TYPE: &str = "ManagedObject";
/// The entity id of the `Unauthenticated` principal.
pub const UNAUTHENTICATED_ID: &str = "unauthenticated";

impl PolicySet {
    /// Loads and strictly validates `schema.cedarschema`, every `*.cedar` file (sorted by
    /// name) and `entities.json` if present; returns every problem found, located.
    pub fn load(dir: &std::path::Path) -> Result<PolicySet, LoadErrors> {
        load::load_dir(dir)
    }
}
