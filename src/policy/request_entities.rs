//! The entity store one decision is evaluated against: `entities.json` as loaded, or, for a
//! principal it does not fully describe (an unknown user, or groups the identity step found that
//! it does not list), a copy with that principal added.
//!
//! A copy costs a clone of the whole store and a transitive-closure repair, so it grows with
//! `entities.json`. The copies of the principals seen most recently are kept with the loaded set
//! (a reload starts afresh): a copy is a pure function of the store and the principal, so a kept
//! one decides exactly as a new one would.
//!
//! A resource `entities.json` does not know is not added when an entity of its type without
//! attributes conforms to the schema: Cedar evaluates a missing entity like one without
//! attributes or parents (`in` compares uids, `has` is false; reading an attribute errs in both,
//! worded differently, and strict validation only lets a policy read an optional attribute after
//! `has`). When the type has required attributes, the resource is added and the decision fails
//! closed on the schema error, as before.

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityTypeName, EntityUid, Schema};

use super::error::diagnostic_text;
use super::index::entity;
use super::kept::Kept;

/// How many principals' stores a loaded set keeps.
pub(crate) const KEPT_PRINCIPALS: usize = 32;

/// A user as the identity step found them: name and groups, in the order given.
pub(crate) type PrincipalKey = (String, Vec<String>);

/// The store copies of recently seen principals, bounded by [`KEPT_PRINCIPALS`].
pub(crate) type PrincipalStores = Kept<PrincipalKey, Arc<Entities>, KEPT_PRINCIPALS>;

/// `entities` with the user `user` added in `groups`, keeping what `entities` says about them.
pub(crate) fn with_user(
    entities: &Entities,
    schema: &Schema,
    user: &EntityUid,
    groups: impl IntoIterator<Item = EntityUid>,
) -> Result<Entities, Vec<String>> {
    let (attrs, mut parents) = match entities.get(user) {
        Some(existing) => {
            let (_, attrs, parents) = existing.clone().into_inner();
            (attrs, parents)
        }
        None => (HashMap::new(), HashSet::new()),
    };
    parents.extend(groups);
    let user = Entity::new(user.clone(), attrs, parents)
        .map_err(|e| vec![format!("request principal: {}", diagnostic_text(&e))])?;
    add(entities, schema, user)
}

/// `entities` with `resource` added without attributes or parents.
pub(crate) fn with_bare_resource(
    entities: &Entities,
    schema: &Schema,
    resource: &EntityUid,
) -> Result<Entities, Vec<String>> {
    add(
        entities,
        schema,
        Entity::new_no_attrs(resource.clone(), HashSet::new()),
    )
}

fn add(entities: &Entities, schema: &Schema, entity: Entity) -> Result<Entities, Vec<String>> {
    entities
        .clone()
        .upsert_entities([entity], Some(schema))
        .map_err(|e| vec![format!("request entities: {}", diagnostic_text(&e))])
}

/// Whether an entity of type `ty` without attributes or parents conforms to `schema`, i.e.
/// whether an unknown resource of that type can be left out of the store (see the module doc).
pub(crate) fn bare_entity_conforms(schema: &Schema, ty: &EntityTypeName) -> bool {
    let probe = Entity::new_no_attrs(entity(ty, "probe"), HashSet::new());
    Entities::empty()
        .add_entities([probe], Some(schema))
        .is_ok()
}

/// The store of one decision: the loaded one, a kept principal's copy, or a copy of its own.
pub(crate) enum RequestEntities<'a> {
    /// `entities.json` as loaded.
    Loaded(&'a Entities),
    /// A principal's copy from [`PrincipalStores`].
    Kept(Arc<Entities>),
    /// A copy made for this decision alone.
    Own(Entities),
}

impl Deref for RequestEntities<'_> {
    type Target = Entities;

    fn deref(&self) -> &Entities {
        match self {
            Self::Loaded(entities) => entities,
            Self::Kept(entities) => entities,
            Self::Own(entities) => entities,
        }
    }
}
