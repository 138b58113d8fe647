//! A method's slice narrowed to one call: the policies whose principal or resource scope
//! cannot match the call's principal or resource (`==` another entity, `is` another type)
//! are left out. Like the slicing by action (see `index`), this is exact: a scope never errs,
//! so a policy whose scope is false is false without an error and decides nothing. Scopes that
//! turn on the entity store (`in`) are left to Cedar.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{EntityTypeName, EntityUid, PolicyId, PrincipalConstraint, ResourceConstraint};

use super::index::{ActionSlice, SliceSets};
use super::kept::Kept;

/// How many narrowed sets a loaded policy set keeps (per method and left-out policies).
const KEPT_NARROWED: usize = 256;

/// Narrowed sets kept by method and left-out policies.
pub(crate) type NarrowedSets = Kept<(String, Box<[u64]>), Arc<SliceSets>, KEPT_NARROWED>;

/// A principal or resource scope as far as the call's own entity tells it.
#[derive(Debug)]
enum ScopeTest {
    /// Any entity, or one the entity store decides (`in`).
    Open,
    /// Only entities of this type (`is T`, `is T in …`).
    Is(EntityTypeName),
    /// Only this entity (`==`).
    Eq(EntityUid),
}

impl ScopeTest {
    fn of_principal(constraint: PrincipalConstraint) -> Self {
        match constraint {
            PrincipalConstraint::Eq(uid) => Self::Eq(uid),
            PrincipalConstraint::Is(ty) | PrincipalConstraint::IsIn(ty, _) => Self::Is(ty),
            PrincipalConstraint::Any | PrincipalConstraint::In(_) => Self::Open,
        }
    }

    fn of_resource(constraint: ResourceConstraint) -> Self {
        match constraint {
            ResourceConstraint::Eq(uid) => Self::Eq(uid),
            ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => Self::Is(ty),
            ResourceConstraint::Any | ResourceConstraint::In(_) => Self::Open,
        }
    }

    /// True when the scope is certainly false for `uid`.
    fn excludes(&self, uid: &EntityUid) -> bool {
        match self {
            Self::Open => false,
            Self::Is(ty) => uid.type_name() != ty,
            Self::Eq(only) => uid != only,
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

/// The scopes of the policies of `sets`, in order; those with neither an `==` nor an `is`
/// scope are left out (nothing to test).
pub(crate) fn scopes_of<'a>(
    sets: impl IntoIterator<Item = &'a cedar::PolicySet>,
) -> Vec<PolicyScopes> {
    sets.into_iter()
        .flat_map(cedar::PolicySet::policies)
        .map(|policy| PolicyScopes {
            id: policy.id().clone(),
            principal: ScopeTest::of_principal(policy.principal_constraint()),
            resource: ScopeTest::of_resource(policy.resource_constraint()),
        })
        .filter(|s| {
            !matches!(
                (&s.principal, &s.resource),
                (ScopeTest::Open, ScopeTest::Open)
            )
        })
        .collect()
}

/// The policies of `scopes` that cannot match a call by `principal` on `resource`, as a bit
/// set over `scopes`; `None` when every one may.
pub(crate) fn left_out(
    scopes: &[PolicyScopes],
    principal: &EntityUid,
    resource: &EntityUid,
) -> Option<Box<[u64]>> {
    let mut bits: Option<Box<[u64]>> = None;
    for (i, scope) in scopes.iter().enumerate() {
        if scope.principal.excludes(principal) || scope.resource.excludes(resource) {
            let bits = bits.get_or_insert_with(|| vec![0; scopes.len().div_ceil(64)].into());
            bits[i / 64] |= 1 << (i % 64);
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
        .filter(|(i, _)| {
            bits.get(i / 64)
                .is_some_and(|word| word & (1 << (i % 64)) != 0)
        })
        .map(|(_, scope)| &scope.id)
        .collect();
    slice.sets.without(|id| out.contains(id))
}
