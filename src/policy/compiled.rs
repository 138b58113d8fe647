//! A slice's policies in evaluation form: each policy's condition (its scopes and its
//! `when`/`unless` clauses as one expression) is built once at load and evaluated per call
//! with Cedar's evaluator; the results are combined as Cedar's authorizer combines them.
//!
//! Cedar's `Authorizer::is_authorized` rebuilds every policy's condition on every evaluation,
//! and rebuilds each determining policy to report its id: about half of what a policy costs a
//! decision. The combination is Cedar's, unchanged: a matching forbid denies; otherwise a
//! matching permit allows; a policy whose evaluation errs matches nothing and is reported. The
//! determining policies are the matching forbids, or without them the matching permits.

use std::sync::Arc;

use cedar_policy as cedar;
use cedar_policy::{Effect, Entities, EvalResult, Expression, PolicyId, Request};

/// One policy ready to evaluate.
#[derive(Debug)]
struct CompiledPolicy {
    /// The policy as loaded (in a slice: without a settled action scope).
    policy: cedar::Policy,
    /// Its condition: `principal-scope && action-scope && resource-scope && when && !unless`.
    condition: Expression,
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
    pub(crate) fn compile(set: &cedar::PolicySet) -> Self {
        Self(
            set.policies()
                .map(|policy| {
                    // `cedar::Policy` offers its core form, and `Expression` takes a core
                    // expression, only as hidden conversions: the condition has no public name.
                    let core: &_ = policy.as_ref();
                    Arc::new(CompiledPolicy {
                        policy: policy.clone(),
                        condition: Expression::from(core.condition()),
                    })
                })
                .collect(),
        )
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

    /// Evaluates every policy for `request` against `entities` and combines the results.
    pub(crate) fn authorize(&self, request: &Request, entities: &Entities) -> Verdict {
        let (mut forbids, mut permits, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for compiled in self.0.iter() {
            let id = compiled.policy.id();
            match cedar::eval_expression(request, entities, &compiled.condition) {
                Ok(EvalResult::Bool(false)) => {}
                Ok(EvalResult::Bool(true)) => match compiled.policy.effect() {
                    Effect::Forbid => forbids.push(id.clone()),
                    Effect::Permit => permits.push(id.clone()),
                },
                // Strict validation admits only boolean conditions; Cedar's authorizer would
                // report any other value as a type error of the policy.
                Ok(other) => errors.push((
                    id.clone(),
                    format!("policy {id}: condition is not a boolean: {other}"),
                )),
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
    pub(crate) fn authorize_by_cedar(&self, request: &Request, entities: &Entities) -> Verdict {
        let set = cedar::PolicySet::from_policies(self.iter().cloned())
            .expect("the policies came from one set");
        let response = cedar::Authorizer::new().is_authorized(request, &set, entities);
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
