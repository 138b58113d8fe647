//! A method's slice narrowed to one call: the policies whose principal or resource scope
//! cannot match the call's principal or resource (`==` another entity, `is` another type,
//! `in` an entity it is not in) are left out. Like the slicing by action (see `index`), this
//! is exact: a scope never errs, so a policy whose scope is false is false without an error
//! and decides nothing.
//!
//! `in` turns on the entity store. The [`Memberships`] built at load say which `in` targets each
//! entity of the loaded store is in; a decision's store differs from it only by the principal
//! (put in the identity step's groups) and a resource without parents (see `request_entities`),
//! so the principal is in what it and its groups are in, and the resource in what the loaded
//! store puts it in. Every scope is thus settled before Cedar runs, and the policies left are
//! evaluated without their scopes (see `compiled`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{
    Entities, EntityTypeName, EntityUid, PolicyId, PrincipalConstraint, ResourceConstraint,
};

use super::index::{ActionSlice, SliceSets};
use super::kept::Kept;

/// How many narrowed sets a loaded policy set keeps (per method and left-out policies).
const KEPT_NARROWED: usize = 256;

/// Narrowed sets kept by method and left-out policies.
pub(crate) type NarrowedSets = Kept<(String, Box<[u64]>), Arc<SliceSets>, KEPT_NARROWED>;

/// The `in` targets of a loaded set's scopes, numbered, and which of them each entity of the
/// loaded store is in.
#[derive(Debug, Default)]
pub(crate) struct Memberships {
    /// The `in` targets by number.
    targets: HashMap<EntityUid, usize>,
    /// Per entity that is in any target (itself one, or a descendant of one): the targets it
    /// is in, as a bit set over their numbers. Looked up twice per decision, hence the fast
    /// hash.
    of: HashMap<EntityUid, Box<[u64]>, foldhash::fast::RandomState>,
}

impl Memberships {
    /// The number of `target`, numbering it when it is new.
    fn number(&mut self, target: EntityUid) -> usize {
        let next = self.targets.len();
        *self.targets.entry(target).or_insert(next)
    }

    /// Fills in which targets each entity of `entities` is in (the store's ancestors are
    /// transitive) and which each target is in by being it, whether the store holds it or not.
    pub(crate) fn settle(&mut self, entities: &Entities) {
        let words = self.targets.len().div_ceil(64);
        let mut of: HashMap<EntityUid, Box<[u64]>, _> = HashMap::default();
        let mut set = |uid: &EntityUid, target: usize| {
            let bits = of
                .entry(uid.clone())
                .or_insert_with(|| vec![0; words].into());
            set_bit(bits, target);
        };
        for (target, &n) in &self.targets {
            set(target, n);
        }
        for entity in entities.iter() {
            let uid = entity.uid();
            for ancestor in entities.ancestors(&uid).into_iter().flatten() {
                if let Some(&n) = self.targets.get(ancestor) {
                    set(&uid, n);
                }
            }
        }
        self.of = of;
    }

    /// The targets `uid` is in, in the loaded store.
    pub(crate) fn of(&self, uid: &EntityUid) -> &[u64] {
        self.of.get(uid).map_or(&[], |bits| bits)
    }

    /// The targets `principal` is in when it is in `groups` too: what the loaded store puts it
    /// in, and what each group is in (itself included).
    pub(crate) fn of_principal<'a>(
        &'a self,
        principal: &EntityUid,
        groups: impl IntoIterator<Item = EntityUid>,
    ) -> Cow<'a, [u64]> {
        let mut bits = Cow::Borrowed(self.of(principal));
        for group in groups {
            let of_group = self.of(&group);
            if of_group.is_empty() {
                continue;
            }
            if bits.is_empty() {
                bits = Cow::Borrowed(of_group);
                continue;
            }
            // Every non-empty set has one word per 64 targets.
            let union = bits.to_mut();
            union
                .iter_mut()
                .zip(of_group)
                .for_each(|(word, g)| *word |= g);
        }
        bits
    }
}

/// Sets bit `n` of `bits`.
fn set_bit(bits: &mut [u64], n: usize) {
    bits[n / 64] |= 1 << (n % 64);
}

/// Whether bit `n` of `bits` is set.
fn has(bits: &[u64], n: usize) -> bool {
    bits.get(n / 64)
        .is_some_and(|word| word & (1 << (n % 64)) != 0)
}

/// A principal or resource scope as far as the call's own entity and its memberships tell it.
#[derive(Debug)]
enum ScopeTest {
    /// Any entity.
    Open,
    /// Only entities of this type (`is T`).
    Is(EntityTypeName),
    /// Only this entity (`==`).
    Eq(EntityUid),
    /// Only entities in the target of this number (`in`; itself or a descendant).
    In(usize),
    /// Only entities of this type in the target of this number (`is T in`).
    IsIn(EntityTypeName, usize),
}

impl ScopeTest {
    fn of_principal(constraint: PrincipalConstraint, memberships: &mut Memberships) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Open,
            PrincipalConstraint::Eq(uid) => Self::Eq(uid),
            PrincipalConstraint::Is(ty) => Self::Is(ty),
            PrincipalConstraint::In(uid) => Self::In(memberships.number(uid)),
            PrincipalConstraint::IsIn(ty, uid) => Self::IsIn(ty, memberships.number(uid)),
        }
    }

    fn of_resource(constraint: ResourceConstraint, memberships: &mut Memberships) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Open,
            ResourceConstraint::Eq(uid) => Self::Eq(uid),
            ResourceConstraint::Is(ty) => Self::Is(ty),
            ResourceConstraint::In(uid) => Self::In(memberships.number(uid)),
            ResourceConstraint::IsIn(ty, uid) => Self::IsIn(ty, memberships.number(uid)),
        }
    }

    /// True when the scope is false for `uid`, which is in the targets `member_of`.
    fn excludes(&self, uid: &EntityUid, member_of: &[u64]) -> bool {
        let outside = |n: usize| !has(member_of, n);
        match self {
            Self::Open => false,
            Self::Is(ty) => uid.type_name() != ty,
            Self::Eq(only) => uid != only,
            Self::In(n) => outside(*n),
            Self::IsIn(ty, n) => uid.type_name() != ty || outside(*n),
        }
    }
}

/// The principal and resource scope of one policy of a slice.
#[derive(Debug)]
pub(crate) struct PolicyScopes {
    id: PolicyId,
    principal: ScopeTest,
    resource: ScopeTest,
}

/// The scopes of the policies of `sets`, in order, numbering their `in` targets in
/// `memberships`; those whose principal and resource scopes admit anything are left out
/// (nothing to test).
pub(crate) fn scopes_of<'a>(
    sets: impl IntoIterator<Item = &'a cedar::PolicySet>,
    memberships: &mut Memberships,
) -> Vec<PolicyScopes> {
    sets.into_iter()
        .flat_map(cedar::PolicySet::policies)
        .map(|policy| PolicyScopes {
            id: policy.id().clone(),
            principal: ScopeTest::of_principal(policy.principal_constraint(), memberships),
            resource: ScopeTest::of_resource(policy.resource_constraint(), memberships),
        })
        .filter(|s| {
            !matches!(
                (&s.principal, &s.resource),
                (ScopeTest::Open, ScopeTest::Open)
            )
        })
        .collect()
}

/// The policies of `scopes` that do not match a call by `principal` on `resource`, which are
/// in the `in` targets given with them, as a bit set over `scopes`; `None` when every one does.
pub(crate) fn left_out(
    scopes: &[PolicyScopes],
    (principal, principal_in): (&EntityUid, &[u64]),
    (resource, resource_in): (&EntityUid, &[u64]),
) -> Option<Box<[u64]>> {
    let mut bits: Option<Box<[u64]>> = None;
    for (i, scope) in scopes.iter().enumerate() {
        if scope.principal.excludes(principal, principal_in)
            || scope.resource.excludes(resource, resource_in)
        {
            let bits = bits.get_or_insert_with(|| vec![0; scopes.len().div_ceil(64)].into());
            set_bit(bits, i);
        }
    }
    bits
}

/// `slice`'s sets without the policies of `slice.scopes` set in `bits`.
pub(crate) fn narrowed(slice: &ActionSlice, bits: &[u64]) -> SliceSets {
    let out: HashSet<&PolicyId> = slice
        .scopes
        .iter()
        .enumerate()
        .filter(|(i, _)| has(bits, *i))
        .map(|(_, scope)| &scope.id)
        .collect();
    slice.sets.without(|id| out.contains(id))
}
