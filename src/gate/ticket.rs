//! Ticket: the change ticket a guarded call carries, verified, as facts for the policy context.

use serde_json::Value;

/// What the ticket step learned about a guarded call's change ticket.
#[derive(Debug, Clone, Default)]
pub struct TicketFacts {
    /// The verified ticket as the policy context's `ticket` record; `None` without a valid ticket.
    pub context: Option<Value>,
    /// Why the ticket does not authorise this call, shown with a denial.
    pub problem: Option<String>,
}
