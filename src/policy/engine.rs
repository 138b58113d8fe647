//! The loaded, immutable policy set and the decision on one request.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{Context, Entities, EntityId, EntityTypeName, EntityUid, Request};

use super::checked::{CheckedShapes, ShapeKey};
use super::compiled::{Evaluation, Policies, Verdict};
use super::context::{IpValues, fast_context};
use super::decision::{ApprovalNeed, Decision, PolicyHit};
use super::error::diagnostic_text;
use super::index::{ActionSlice, EntityTypes, SliceSets, entity};
use super::request::{PolicyRequest, Principal};
use super::request_entities::{PrincipalStores, RequestEntities, with_bare_resource, with_user};
use super::scopes::{Memberships, NarrowedSets, left_out, narrowed};
use super::{MANAGED_OBJECT_TYPE, NAMESPACE, UNAUTHENTICATED_ID};

/// How a decision combines a set of policies for a request (Cedar's authorizer or the same
/// combination of the compiled policies).
type Authorize = fn(&Policies, &Evaluation<'_>) -> Verdict;

/// Where a policy came from, for messages.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    /// The `@reason` annotation.
    pub(crate) reason: Option<String>,
    /// `file:line` of the policy.
    pub(crate) location: String,
    /// True for `@mode("monitor")` policies.
    pub(crate) monitor: bool,
    /// The approver group of an `@approval("group")` forbid.
    pub(crate) approval: Option<String>,
}

/// A validated set of policies with its schema and entities; immutable, share it via `Arc`.
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) schema: cedar::Schema,
    /// Every enforced policy (decisions use the per-method `slices`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) enforced: cedar::PolicySet,
    /// Every monitor-mode policy (decisions use the per-method `slices`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) monitor: cedar::PolicySet,
    pub(crate) entities: Entities,
    pub(crate) hash: String,
    /// Per policy id: reason, location, mode.
    pub(crate) meta: BTreeMap<String, PolicyMeta>,
    /// Declared methods (actions that are not groups), sorted.
    pub(crate) guarded: Vec<String>,
    pub(crate) guarded_set: HashSet<String>,
    /// Declared action groups.
    pub(crate) groups: HashSet<String>,
    /// Entity type basenames a resource may be evaluated as (declared, not principals).
    pub(crate) resource_types: HashSet<String>,
    /// Per guarded method: the policies that can apply to it (see `index`).
    pub(crate) slices: HashMap<String, ActionSlice>,
    /// Entity type names parsed at load.
    pub(crate) types: EntityTypes,
    /// Which of the scopes' `in` targets each entity of `entities` is in.
    pub(crate) memberships: Memberships,
    /// The entity stores of recently seen principals `entities` does not fully describe.
    pub(crate) principal_stores: PrincipalStores,
    /// The `ip` values of recently seen client addresses.
    pub(crate) ip_values: IpValues,
    /// The enumerated entity types of the schema (`None`: unknown, so every type counts).
    pub(crate) enumerated: Option<HashSet<String>>,
    /// The request shapes that passed the schema check.
    pub(crate) checked_shapes: CheckedShapes,
    /// Slices narrowed to calls whose principal or resource some policies' scopes exclude.
    pub(crate) narrowed: NarrowedSets,
    /// Every policy as one slice, for the reference decisions of the tests.
    #[cfg(test)]
    pub(crate) whole_sets: std::sync::OnceLock<Arc<SliceSets>>,
}

impl PolicySet {
    /// SHA-256 (hex) over the loaded files' names and contents; stable for the same files.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The method names declared as actions in the schema (without the action groups), sorted.
    pub fn guarded_actions(&self) -> Vec<String> {
        self.guarded.clone()
    }

    /// True when `action` (a vim method name) is declared in the schema and so is guarded.
    pub fn is_guarded(&self, action: &str) -> bool {
        self.guarded_set.contains(action)
    }

    /// The ids of all loaded policies (enforced and monitor), sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        self.meta.keys().cloned().collect()
    }

    /// The ids of the monitor-mode policies, sorted.
    pub fn monitor_policy_ids(&self) -> Vec<String> {
        self.meta
            .iter()
            .filter(|(_, m)| m.monitor)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The `@reason` of a policy, if it has one.
    pub fn reason(&self, id: &str) -> Option<&str> {
        self.meta.get(id).and_then(|m| m.reason.as_deref())
    }

    /// The `file:line` a policy was loaded from.
    pub fn location(&self, id: &str) -> Option<&str> {
        self.meta.get(id).map(|m| m.location.as_str())
    }

    /// The schema entity type a vim managed-object type is evaluated as (`ManagedObject` for
    /// types the schema does not declare; `ClusterComputeResource` is a `Cluster`).
    pub fn resource_type_name(&self, mo_type: &str) -> String {
        self.resource_basename(mo_type).to_string()
    }

    /// [`Self::resource_type_name`] without the allocation.
    fn resource_basename<'a>(&self, mo_type: &'a str) -> &'a str {
        let mapped = if mo_type == "ClusterComputeResource" {
            "Cluster"
        } else {
            mo_type
        };
        if self.resource_types.contains(mapped) {
            mapped
        } else {
            MANAGED_OBJECT_TYPE
        }
    }

    /// The hosts (`HostSystem` moIds) `entities.json` puts the object under, e.g. `host-21` for
    /// `HostAccessManager` `ham-21`; empty for unknown objects and for hosts themselves.
    pub fn hosts_of(&self, mo_type: &str, mo_id: &str) -> Vec<String> {
        let Some(ty) = self.types.resource(self.resource_basename(mo_type)) else {
            return Vec::new();
        };
        let object = entity(ty, mo_id);
        let Some(ancestors) = self.entities.ancestors(&object) else {
            return Vec::new();
        };
        let mut hosts: Vec<String> = ancestors
            .filter(|a| a.type_name().basename() == "HostSystem")
            .map(|a| a.id().unescaped().to_owned())
            .collect();
        hosts.sort();
        hosts
    }

    /// The groups `entities.json` makes the user `name` a member of (directly or through
    /// other groups), sorted.
    pub fn groups_of_user(&self, name: &str) -> Vec<String> {
        let user = entity(&self.types.user, name);
        let Some(ancestors) = self.entities.ancestors(&user) else {
            return Vec::new();
        };
        let mut groups: Vec<String> = ancestors
            .filter(|a| a.type_name().basename() == "Group")
            .map(|a| a.id().unescaped().to_owned())
            .collect();
        groups.sort();
        groups
    }

    /// Decides on one call. Never panics; any validation or evaluation error denies.
    ///
    /// Only the policies whose action scope can match the request's method are evaluated
    /// (the index built at load); the answer is the one the whole set would give.
    pub fn evaluate(&self, request: &PolicyRequest) -> Decision {
        let action_name = request.action.as_str();
        let slice = match self.slices.get(action_name) {
            Some(slice) if self.guarded_set.contains(action_name) => slice,
            _ => return self.not_a_method(action_name),
        };
        self.decide(request, slice, false, Policies::authorize)
    }

    /// Decides on a call whose approval was granted: its `@approval` forbids are lifted; every
    /// other policy (including ones reading `context.approval`) decides as usual.
    pub fn evaluate_approved(&self, request: &PolicyRequest) -> Decision {
        let action_name = request.action.as_str();
        let slice = match self.slices.get(action_name) {
            Some(slice) if self.guarded_set.contains(action_name) => slice,
            _ => return self.not_a_method(action_name),
        };
        self.decide(request, slice, true, Policies::authorize)
    }

    /// [`Self::evaluate`] against the whole enforced and monitor sets, unsliced and by Cedar's
    /// own authorizer: the reference the index and the compiled policies are tested against.
    #[cfg(test)]
    pub(crate) fn evaluate_unsliced(&self, request: &PolicyRequest) -> Decision {
        let action_name = request.action.as_str();
        let Some(slice) = self.slices.get(action_name) else {
            return self.not_a_method(action_name);
        };
        let sets = self.whole_sets.get_or_init(|| {
            Arc::new(
                SliceSets::new(&self.enforced, &self.monitor, &approval_ids(&self.meta))
                    .expect("the loaded policies compile"),
            )
        });
        let whole = ActionSlice {
            action: slice.action.clone(),
            sets: sets.clone(),
            scopes: Vec::new(),
        };
        self.decide(request, &whole, false, Policies::authorize_by_cedar)
    }

    /// `context` as Cedar's schema-directed JSON parser reads it for `action`: the reference
    /// the fast context path is tested against.
    #[cfg(test)]
    pub(crate) fn context_parsed_by_cedar(
        &self,
        action: &str,
        context: &serde_json::Value,
    ) -> Option<Context> {
        let slice = self.slices.get(action)?;
        Context::from_json_value(context.clone(), Some((&self.schema, &slice.action))).ok()
    }

    /// The deny for an action that is not a declared method.
    fn not_a_method(&self, action_name: &str) -> Decision {
        let message = if self.groups.contains(action_name) {
            format!("action {action_name} is an action group, not a method")
        } else if self.guarded_set.contains(action_name) {
            format!("internal error: no policy index for action {action_name}")
        } else {
            format!("action {action_name} is not declared in the schema")
        };
        Decision::error(action_name, &self.hash, vec![message])
    }

    /// Decides on one call with the policies of `slice`, combined by `authorize`.
    fn decide(
        &self,
        request: &PolicyRequest,
        slice: &ActionSlice,
        approved: bool,
        authorize: Authorize,
    ) -> Decision {
        let action_name = request.action.as_str();
        let (cedar_request, entities) = match self.prepare(request, &slice.action) {
            Ok(prepared) => prepared,
            Err(errors) => return Decision::error(action_name, &self.hash, errors),
        };
        let sets = match self.call_sets(request, slice, &cedar_request) {
            Ok(sets) => sets,
            Err(error) => return Decision::error(action_name, &self.hash, vec![error]),
        };
        let evaluation = Evaluation::new(&cedar_request, &entities);

        let enforced = match (&sets.approvable, approved) {
            (Some(approvable), true) => approvable,
            _ => &sets.enforced,
        };
        let verdict = authorize(enforced, &evaluation);
        let errors: Vec<String> = verdict.errors.into_iter().map(|(_, text)| text).collect();
        let allowed = verdict.allowed && errors.is_empty();
        // A Cedar allow overruled by an error has no determining forbid.
        let determining = if verdict.allowed && !allowed {
            Vec::new()
        } else {
            self.hits(verdict.determining.iter())
        };

        let (monitor_hits, monitor_errors) = if sets.monitor.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let verdict = authorize(&sets.monitor, &evaluation);
            let mut ids: BTreeSet<String> = verdict.determining.iter().map(id_text).collect();
            let mut monitor_errors = Vec::new();
            for (id, text) in verdict.errors {
                // An erring monitor forbid would deny (fail closed) if it were enforced.
                ids.insert(id_text(&id));
                monitor_errors.push(text);
            }
            (self.hits_from_ids(ids), monitor_errors)
        };

        let approval = if !allowed && !approved && errors.is_empty() {
            self.approval_need(&determining, &sets, &evaluation, authorize)
        } else {
            None
        };
        Decision {
            allowed,
            approval,
            action: action_name.to_string(),
            determining,
            monitor_hits,
            errors,
            monitor_errors,
            policy_set_hash: self.hash.clone(),
            refusal: None,
        }
    }

    /// The approval that would let a denied call through: every determining forbid carries
    /// `@approval` naming one group, and without them an enforced permit matches cleanly.
    fn approval_need(
        &self,
        determining: &[PolicyHit],
        sets: &SliceSets,
        evaluation: &Evaluation<'_>,
        authorize: Authorize,
    ) -> Option<ApprovalNeed> {
        let approvable = sets.approvable.as_ref()?;
        let mut groups = determining
            .iter()
            .map(|hit| self.meta.get(&hit.id).and_then(|m| m.approval.as_deref()));
        let group = groups.next()??;
        if !groups.all(|g| g == Some(group)) {
            return None;
        }
        let verdict = authorize(approvable, evaluation);
        let permitted = verdict.allowed && verdict.errors.is_empty();
        permitted.then(|| ApprovalNeed {
            group: group.to_owned(),
            policies: determining.to_vec(),
        })
    }

    /// The sets `request` is decided with: `slice` without the policies whose principal or
    /// resource scope does not match the call (kept for later calls with the same ones left
    /// out), or the whole slice when every one matches. Either way every principal and resource
    /// scope of the policies in them holds for the call.
    fn call_sets(
        &self,
        request: &PolicyRequest,
        slice: &ActionSlice,
        cedar_request: &Request,
    ) -> Result<Arc<SliceSets>, String> {
        let (Some(principal), Some(resource)) =
            (cedar_request.principal(), cedar_request.resource())
        else {
            return Err("internal error: a request without its principal or resource".to_string());
        };
        let groups: &[String] = match &request.principal {
            Principal::User { groups, .. } => groups,
            Principal::Unauthenticated => &[],
        };
        let principal_in = self.memberships.of_principal(
            principal,
            groups.iter().map(|g| entity(&self.types.group, g)),
        );
        let resource_in = self.memberships.of(resource);
        let Some(bits) = left_out(
            &slice.scopes,
            (principal, &principal_in),
            (resource, resource_in),
        ) else {
            return Ok(slice.sets.clone());
        };
        let key = (request.action.clone(), bits);
        Ok(self
            .narrowed
            .get_or_insert(&key, || Arc::new(narrowed(slice, &key.1))))
    }

    /// Builds the validated Cedar request and the entity store for it.
    fn prepare(
        &self,
        request: &PolicyRequest,
        action: &EntityUid,
    ) -> Result<(Request, RequestEntities<'_>), Vec<String>> {
        let principal_uid = match &request.principal {
            Principal::User { name, .. } => entity(&self.types.user, name),
            Principal::Unauthenticated => entity(&self.types.unauthenticated, UNAUTHENTICATED_ID),
        };
        let resource_type = self.resource_basename(&request.resource.mo_type);
        let resource_uid = match self.types.resource(resource_type) {
            Some(ty) => entity(ty, &request.resource.id),
            None => {
                return Err(vec![format!(
                    "internal error: resource type {resource_type} is not indexed"
                )]);
            }
        };

        let new_request = |context, schema| {
            Request::new(
                principal_uid.clone(),
                action.clone(),
                resource_uid.clone(),
                context,
                schema,
            )
            .map_err(|e| vec![format!("request: {}", diagnostic_text(&e))])
        };
        let mut shape = ShapeKey::new(
            &request.action,
            self.key_part(&principal_uid),
            self.key_part(&resource_uid),
        );
        let fast =
            fast_context(&request.context, &self.ip_values, &mut shape).and_then(|context| {
                if self.checked_shapes.contains(&shape) {
                    return new_request(context, None).ok();
                }
                let checked = new_request(context, Some(&self.schema)).ok()?;
                self.checked_shapes.insert(shape);
                Some(checked)
            });
        let cedar_request = match fast {
            Some(cedar_request) => cedar_request,
            None => {
                let context =
                    Context::from_json_value(request.context.clone(), Some((&self.schema, action)))
                        .map_err(|e| vec![format!("request context: {}", diagnostic_text(&e))])?;
                new_request(context, Some(&self.schema))?
            }
        };

        let mut entities = RequestEntities::Loaded(&self.entities);
        if let Principal::User { name, groups } = &request.principal {
            let known = self.entities.get(&principal_uid).is_some()
                && groups.iter().all(|g| {
                    self.entities
                        .is_ancestor_of(&entity(&self.types.group, g), &principal_uid)
                });
            if !known {
                let key = (name.clone(), groups.clone());
                let kept = self.principal_stores.get_or_try_insert(&key, || {
                    let groups = groups.iter().map(|g| entity(&self.types.group, g));
                    with_user(&self.entities, &self.schema, &principal_uid, groups).map(Arc::new)
                })?;
                entities = RequestEntities::Kept(kept);
            }
        }
        if self.entities.get(&resource_uid).is_none()
            && !self.types.resource_may_be_missing(resource_type)
        {
            let own = with_bare_resource(&entities, &self.schema, &resource_uid)?;
            entities = RequestEntities::Own(own);
        }
        Ok((cedar_request, entities))
    }

    /// An entity's part of a [`ShapeKey`]: its type, and its id when the type is enumerated
    /// (or the schema's enumerated types are unknown).
    fn key_part<'a>(&self, uid: &'a EntityUid) -> (&'a str, Option<&'a str>) {
        let ty = uid.type_name().basename();
        let enumerated = self
            .enumerated
            .as_ref()
            .is_none_or(|types| types.contains(ty));
        (ty, enumerated.then(|| uid.id().unescaped()))
    }

    fn hits<'a>(&self, ids: impl Iterator<Item = &'a cedar::PolicyId>) -> Vec<PolicyHit> {
        self.hits_from_ids(ids.map(id_text).collect())
    }

    fn hits_from_ids(&self, ids: BTreeSet<String>) -> Vec<PolicyHit> {
        ids.into_iter()
            .map(|id| PolicyHit {
                reason: self.reason(&id).map(str::to_string),
                id,
            })
            .collect()
    }
}

/// A policy's id as its `@id` gives it. `PolicyId`'s `Display` escapes it character by
/// character (a tenth of a decision with five matching permits), and would print the loaded
/// ids (`[A-Za-z0-9._-]`, see `load`) unchanged.
fn id_text(id: &cedar::PolicyId) -> String {
    let raw: &str = id.as_ref();
    raw.to_owned()
}

/// The ids of the `@approval` forbids among `meta`.
pub(crate) fn approval_ids(meta: &BTreeMap<String, PolicyMeta>) -> HashSet<String> {
    meta.iter()
        .filter(|(_, m)| m.approval.is_some())
        .map(|(id, _)| id.clone())
        .collect()
}

/// `VSphere::<ty>::"<id>"`.
pub(crate) fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = EntityTypeName::from_str(&format!("{NAMESPACE}::{ty}"))
        .map_err(|e| format!("invalid entity type `{ty}`: {e}"))?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}
