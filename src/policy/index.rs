//! The loaded policy set indexed for decisions: per guarded method, the policies whose action
//! scope can match it (so a decision evaluates only those), and the entity type names the
//! engine builds requests with, parsed once at load.
//!
//! Slicing is exact: a Cedar policy is `principal-scope && action-scope && resource-scope &&
//! conditions`, evaluated left to right with short-circuiting, and the principal scope
//! (`==`, `in`, `is`) never errs. A policy whose action scope is false for a method is
//! therefore false *without an error* for every request on that method: leaving it out of
//! the evaluated set changes neither the decision, nor the determining policies, nor the
//! evaluation errors. Policies keep their order, ids and annotations. For the same reason a
//! policy whose action scope is certainly true for the method is kept without the scope.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{ActionConstraint, EntityId, EntityTypeName, EntityUid, PolicyId};

use super::compiled::{Policies, with_scopes_admitting_anything};
use super::request_entities::bare_entity_conforms;
use super::scopes::{Memberships, PolicyScopes, scopes_of};
use super::{MANAGED_OBJECT_TYPE, NAMESPACE};

/// The policies that can apply to one guarded method.
#[derive(Debug)]
pub(crate) struct ActionSlice {
    /// `VSphere::Action::"<method>"`.
    pub(crate) action: EntityUid,
    /// The policies whose action scope can match the method.
    pub(crate) sets: Arc<SliceSets>,
    /// The `==` and `is` principal and resource scopes of the slice's policies, which narrow
    /// the slice to a call (see `scopes`).
    pub(crate) scopes: Vec<PolicyScopes>,
}

/// The policy sets one decision evaluates.
#[derive(Debug)]
pub(crate) struct SliceSets {
    /// The enforced policies, in load order.
    pub(crate) enforced: Policies,
    /// The monitor-mode policies, in load order.
    pub(crate) monitor: Policies,
    /// `enforced` without its `@approval` forbids, when it has any: what decides a call
    /// whose approval was granted (and whether a permit would match without them).
    pub(crate) approvable: Option<Policies>,
}

impl SliceSets {
    /// The sets of `enforced` and `monitor`; `approval_ids` are the `@approval` forbids.
    pub(crate) fn new(
        enforced: &cedar::PolicySet,
        monitor: &cedar::PolicySet,
        approval_ids: &HashSet<String>,
    ) -> Result<Self, String> {
        let enforced = Policies::compile(enforced)?;
        let named = |id: &PolicyId| approval_ids.contains(&id.to_string());
        let approvable = enforced
            .iter()
            .any(|p| named(p.id()))
            .then(|| enforced.without(named));
        Ok(Self {
            enforced,
            monitor: Policies::compile(monitor)?,
            approvable,
        })
    }

    /// These sets without the policies `out` names.
    pub(crate) fn without(&self, out: impl Fn(&PolicyId) -> bool) -> Self {
        Self {
            enforced: self.enforced.without(&out),
            monitor: self.monitor.without(&out),
            approvable: self.approvable.as_ref().map(|set| set.without(&out)),
        }
    }
}

/// The decision index of a loaded set.
#[derive(Debug)]
pub(crate) struct Index {
    /// Per guarded method, the policies that can apply to it.
    pub(crate) slices: HashMap<String, ActionSlice>,
    /// The entity type names parsed at load.
    pub(crate) types: EntityTypes,
    /// The `in` targets of the slices' scopes and what the loaded store puts in them.
    pub(crate) memberships: Memberships,
}

/// The decision index of a loaded set against its loaded `entities`.
pub(crate) fn build(
    schema: &cedar::Schema,
    methods: &[String],
    (enforced, monitor): (&cedar::PolicySet, &cedar::PolicySet),
    entities: &cedar::Entities,
    resource_types: &HashSet<String>,
    approval_ids: &HashSet<String>,
) -> Result<Index, String> {
    let mut memberships = Memberships::default();
    let slices = slice_by_action(
        schema,
        methods,
        enforced,
        monitor,
        approval_ids,
        &mut memberships,
    )?;
    memberships.settle(entities);
    let types = EntityTypes::new(schema, resource_types)?;
    Ok(Index {
        slices,
        types,
        memberships,
    })
}

/// Builds one [`ActionSlice`] per method in `methods`, resolving action groups through the
/// schema's action hierarchy and numbering the scopes' `in` targets in `memberships`;
/// `approval_ids` are the `@approval` forbids.
fn slice_by_action(
    schema: &cedar::Schema,
    methods: &[String],
    enforced: &cedar::PolicySet,
    monitor: &cedar::PolicySet,
    approval_ids: &HashSet<String>,
    memberships: &mut Memberships,
) -> Result<HashMap<String, ActionSlice>, String> {
    let action_entities = schema
        .action_entities()
        .map_err(|e| format!("action hierarchy of the schema: {e}"))?;
    let action_type = type_name("Action")?;
    let mut slices = HashMap::with_capacity(methods.len());
    for method in methods {
        let action = EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(method));
        // `None` when the schema has no entity for the method: keep every policy that names
        // any group then (never leave out a policy that might apply).
        let groups: Option<HashSet<EntityUid>> = action_entities
            .ancestors(&action)
            .map(|ancestors| ancestors.cloned().collect());
        let enforced = subset(enforced, &action, groups.as_ref())?;
        let monitor = subset(monitor, &action, groups.as_ref())?;
        let slice = ActionSlice {
            scopes: scopes_of([&enforced, &monitor], memberships),
            sets: Arc::new(SliceSets::new(&enforced, &monitor, approval_ids)?),
            action,
        };
        slices.insert(method.clone(), slice);
    }
    Ok(slices)
}

/// The policies of `set` (in order) whose action scope can match `action`; those whose scope
/// certainly matches it lose the scope (see [`without_action_scope`]).
fn subset(
    set: &cedar::PolicySet,
    action: &EntityUid,
    groups: Option<&HashSet<EntityUid>>,
) -> Result<cedar::PolicySet, String> {
    let mut out = cedar::PolicySet::new();
    for policy in set.policies() {
        let kept = match scope_matches(&policy.action_constraint(), action, groups) {
            Some(false) => continue,
            Some(true) if !matches!(policy.action_constraint(), ActionConstraint::Any) => {
                without_action_scope(policy)?
            }
            _ => policy.clone(),
        };
        out.add(kept)
            .map_err(|e| format!("policy {}: {e}", policy.id()))?;
    }
    Ok(out)
}

/// `policy` with the action scope `action` (any action), for the slice of a method its scope
/// certainly matches: Cedar builds and evaluates every policy's scope on every evaluation (an
/// `in` over action groups is an entity look-up), and a scope that is true there decides
/// nothing. Id, annotations, effect, the other scopes and the conditions stay as they are.
fn without_action_scope(policy: &cedar::Policy) -> Result<cedar::Policy, String> {
    with_scopes_admitting_anything(policy, &["action"])
}

/// Whether the action scope matches `action`, whose ancestor groups are `groups`: `None` when
/// that turns on groups that are unknown (`groups` is `None`), so any `in` may match.
fn scope_matches(
    constraint: &ActionConstraint,
    action: &EntityUid,
    groups: Option<&HashSet<EntityUid>>,
) -> Option<bool> {
    match constraint {
        ActionConstraint::Any => Some(true),
        ActionConstraint::Eq(only) => Some(only == action),
        ActionConstraint::In(any_of) => {
            if any_of.contains(action) {
                Some(true)
            } else {
                groups.map(|groups| any_of.iter().any(|g| groups.contains(g)))
            }
        }
    }
}

/// The entity type names the engine builds requests with, parsed once.
#[derive(Debug)]
pub(crate) struct EntityTypes {
    /// `VSphere::User`.
    pub(crate) user: EntityTypeName,
    /// `VSphere::Group`.
    pub(crate) group: EntityTypeName,
    /// `VSphere::Unauthenticated`.
    pub(crate) unauthenticated: EntityTypeName,
    /// Resource types by basename, including `ManagedObject`.
    resources: HashMap<String, EntityTypeName>,
    /// The resource type basenames without required attributes (see `request_entities`).
    bare_resources: HashSet<String>,
}

impl EntityTypes {
    /// Parses the fixed names and one per resource type basename, and notes which resource
    /// types an entity without attributes conforms to in `schema`.
    pub(crate) fn new<'a>(
        schema: &cedar::Schema,
        resource_types: impl IntoIterator<Item = &'a String>,
    ) -> Result<Self, String> {
        let mut resources = HashMap::new();
        for basename in resource_types
            .into_iter()
            .map(String::as_str)
            .chain([MANAGED_OBJECT_TYPE])
        {
            resources.insert(basename.to_string(), type_name(basename)?);
        }
        let bare_resources = resources
            .iter()
            .filter(|(_, ty)| bare_entity_conforms(schema, ty))
            .map(|(basename, _)| basename.clone())
            .collect();
        Ok(Self {
            user: type_name("User")?,
            group: type_name("Group")?,
            unauthenticated: type_name("Unauthenticated")?,
            resources,
            bare_resources,
        })
    }

    /// Whether an unknown resource of this basename may be left out of a decision's store.
    pub(crate) fn resource_may_be_missing(&self, basename: &str) -> bool {
        self.bare_resources.contains(basename)
    }

    /// The parsed name of a resource type basename (as `PolicySet::resource_type_name`
    /// returns it); `None` for a basename that is no resource type.
    pub(crate) fn resource(&self, basename: &str) -> Option<&EntityTypeName> {
        self.resources.get(basename)
    }
}

/// `VSphere::<basename>` as a Cedar type name.
fn type_name(basename: &str) -> Result<EntityTypeName, String> {
    EntityTypeName::from_str(&format!("{NAMESPACE}::{basename}"))
        .map_err(|e| format!("invalid entity type `{basename}`: {e}"))
}

/// `<ty>::"<id>"` without parsing.
pub(crate) fn entity(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}
