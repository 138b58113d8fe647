//! Own API: every request under `/vcguard/` is vcguard's own (its API and web console) and is
//! answered here, after the caller is identified; none of them is ever forwarded to vCenter.

use std::sync::Arc;

use http::Request;

use crate::body::ProxyBody;
use crate::console::Console;
use crate::gate::facts::Facts;
use crate::gate::step::{Inner, Next, Step, StepResult};

/// Answers requests under `/vcguard/` with the console; hands every other request on.
#[derive(Clone)]
pub struct OwnApi {
    console: Console,
}

impl OwnApi {
    /// The step answering with `console`.
    pub fn new(console: Console) -> Self {
        Self { console }
    }
}

impl Step for OwnApi {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        if !facts.own_api {
            return next.run(req).await;
        }
        Ok(Box::pin(self.console.answer(req, &facts)).await)
    }

    fn applies_to(&self, _req: &Request<ProxyBody>, facts: &Facts) -> bool {
        facts.own_api
    }
}
