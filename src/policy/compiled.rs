//! A slice's policies in evaluation form: each policy's condition (its `when`/`unless` clauses,
//! and an action scope the slice did not settle, as one expression) is built once at load and
//! evaluated per call with Cedar's evaluator, one per decision; the results are combined as
//! Cedar's authorizer combines them.
//!
//! Cedar's `Authorizer::is_authorized` rebuilds every policy's condition on every evaluation,
//! and rebuilds each determining policy to report its id: about half of what a policy costs a
//! decision. The combination is Cedar's, unchanged: a matching forbid denies; otherwise a
//! matching permit allows; a policy whose evaluation errs matches nothing and is reported. The
//! determining policies are the matching forbids, or without them the matching permits.
//!
//! A condition is built from the policy's JSON form, which carries no source locations: Cedar's
//! evaluator copies an expression's location into the value of every node it evaluates (an
//! atomic count on the policy file's text, which all policies of the file and both cores
//! share). Scopes that admit anything (`principal`, `action`, `resource`) are `true && …` in
//! the condition and are left out: `true && c` is `c` for a boolean `c`, and errs as `c` does
//! otherwise. The principal and resource scopes are left out as well: a decision evaluates
//! only policies whose scopes it has settled to hold for the call (see `scopes`), and a
//! scope never errs, so such a policy decides as the rest of its condition does.

use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{Effect, Entities, PolicyId, Request};
use cedar_policy_core::ast::{Expr, ExprKind, Literal, SlotEnv, ValueKind};
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;

/// One policy ready to evaluate.
#[derive(Debug)]
struct CompiledPolicy {
    /// The policy as loaded (in a slice: without a settled action scope).
    policy: cedar::Policy,
    /// Its condition (`principal-scope && action-scope && resource-scope && when && !unless`)
    /// without the principal and resource scopes, the scopes that admit anything and source
    /// locations.
    condition: Expr,
}

/// One request and entity store with Cedar's evaluator for them, built once per decision.
pub(crate) struct Evaluation<'e> {
    /// The request (read by Cedar's own authorizer in tests).
    #[cfg_attr(not(test), allow(dead_code))]
    request: &'e Request,
    /// The entity store (read by Cedar's own authorizer in tests).
    #[cfg_attr(not(test), allow(dead_code))]
    entities: &'e Entities,
    evaluator: Evaluator<'e>,
    slots: SlotEnv,
}

impl<'e> Evaluation<'e> {
    /// The evaluator for `request` against `entities`.
    pub(crate) fn new(request: &'e Request, entities: &'e Entities) -> Self {
        let core_request: &cedar_policy_core::ast::Request = request.as_ref();
        Self {
            request,
            entities,
            evaluator: Evaluator::new(
                core_request.clone(),
                entities.as_ref(),
                Extensions::all_available(),
            ),
            slots: SlotEnv::new(),
        }
    }
}

/// Policies in evaluation form, in load order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies(Vec<Arc<CompiledPolicy>>);

/// What a set of policies says about one request, as Cedar's authorizer answers it.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// A permit matched and no forbid did.
    pub(crate) allowed: bool,
    /// The matching forbids, or without them the matching permits.
    pub(crate) determining: Vec<PolicyId>,
    /// The policies whose evaluation erred and the error (`policy <id>: <error>`), in order.
    pub(crate) errors: Vec<(PolicyId, String)>,
}

impl Policies {
    /// The policies of `set`, in its order, with their conditions built.
    pub(crate) fn compile(set: &cedar::PolicySet) -> Result<Self, String> {
        set.policies()
            .map(|policy| {
                Ok(Arc::new(CompiledPolicy {
                    policy: policy.clone(),
                    condition: condition_of(policy)?,
                }))
            })
            .collect::<Result<_, String>>()
            .map(Self)
    }

    /// True when there are no policies.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The policies, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &cedar::Policy> {
        self.0.iter().map(|p| &p.policy)
    }

    /// These policies without those `out` names.
    pub(crate) fn without(&self, out: impl Fn(&PolicyId) -> bool) -> Self {
        Self(
            self.0
                .iter()
                .filter(|p| !out(p.policy.id()))
                .cloned()
                .collect(),
        )
    }

    /// Evaluates every policy for the request of `evaluation` and combines the results. The
    /// policies' principal and resource scopes must hold for the request (see `scopes`).
    pub(crate) fn authorize(&self, evaluation: &Evaluation<'_>) -> Verdict {
        let (mut forbids, mut permits, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for compiled in self.0.iter() {
            let id = compiled.policy.id();
            match evaluation
                .evaluator
                .interpret(&compiled.condition, &evaluation.slots)
            {
                Ok(value) => match value.value_kind() {
                    ValueKind::Lit(Literal::Bool(false)) => {}
                    ValueKind::Lit(Literal::Bool(true)) => match compiled.policy.effect() {
                        Effect::Forbid => forbids.push(id.clone()),
                        Effect::Permit => permits.push(id.clone()),
                    },
                    // Strict validation admits only boolean conditions; Cedar's authorizer
                    // would report any other value as a type error of the policy.
                    _ => errors.push((
                        id.clone(),
                        format!("policy {id}: condition is not a boolean: {value}"),
                    )),
                },
                Err(e) => errors.push((id.clone(), format!("policy {id}: {e}"))),
            }
        }
        let allowed = forbids.is_empty() && !permits.is_empty();
        Verdict {
            allowed,
            determining: if forbids.is_empty() { permits } else { forbids },
            errors,
        }
    }

    /// [`Self::authorize`] by Cedar's own authorizer: the reference it is tested against.
    #[cfg(test)]
    pub(crate) fn authorize_by_cedar(&self, evaluation: &Evaluation<'_>) -> Verdict {
        let set = cedar::PolicySet::from_policies(self.iter().cloned())
            .expect("the policies came from one set");
        let response =
            cedar::Authorizer::new().is_authorized(evaluation.request, &set, evaluation.entities);
        let determining = response.diagnostics().reason().cloned().collect();
        let errors = response
            .diagnostics()
            .errors()
            .map(|error| {
                let cedar::AuthorizationError::PolicyEvaluationError(e) = error;
                (
                    e.policy_id().clone(),
                    format!("policy {}: {}", e.policy_id(), e.inner()),
                )
            })
            .collect();
        Verdict {
            allowed: response.decision() == cedar::Decision::Allow,
            determining,
            errors,
        }
    }
}

/// `policy`'s condition without its principal and resource scopes, without the `true &&` of
/// scopes that admit anything and without source locations (built from its JSON form).
fn condition_of(policy: &cedar::Policy) -> Result<Expr, String> {
    let located_nowhere = with_scopes_admitting_anything(policy, &["principal", "resource"])?;
    let core: &cedar_policy_core::ast::Policy = located_nowhere.as_ref();
    Ok(without_any_scopes(&core.condition()))
}

/// `policy` rebuilt from its JSON form (so without source locations) with each of `scopes`
/// (`"principal"`, `"action"`, `"resource"`) admitting anything; id, annotations, effect, the
/// other scopes and the conditions stay as they are.
pub(crate) fn with_scopes_admitting_anything(
    policy: &cedar::Policy,
    scopes: &[&str],
) -> Result<cedar::Policy, String> {
    let failed = |e: &dyn std::fmt::Display| format!("policy {}: {e}", policy.id());
    let mut json = policy.to_json().map_err(|e| failed(&e))?;
    for scope in scopes {
        let Some(constraint) = json.get_mut(scope) else {
            return Err(failed(&format!("no {scope} scope in its JSON form")));
        };
        *constraint = serde_json::json!({ "op": "All" });
    }
    cedar::Policy::from_json(Some(policy.id().clone()), json).map_err(|e| failed(&e))
}

/// `condition` (`scope && (scope && (scope && body))`) without the `true &&` along its right
/// spine.
fn without_any_scopes(condition: &Expr) -> Expr {
    match condition.expr_kind() {
        ExprKind::And { left, right } => {
            let right = without_any_scopes(right);
            if matches!(left.expr_kind(), ExprKind::Lit(Literal::Bool(true))) {
                right
            } else {
                Expr::and(left.as_ref().clone(), right)
            }
        }
        _ => condition.clone(),
    }
}
