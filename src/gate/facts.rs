//! What the steps learn about one request, carried in its extensions as one shared value: each
//! fact is set once, by the step that learns it, and read by every later step and by the audit
//! step on the way back (which no longer has the request).

use std::sync::{Arc, OnceLock};

use http::Request;

use crate::gate::look_up::LookedUp;
use crate::gate::ticket::TicketFacts;
use crate::identity::Caller;
use crate::policy::{Decision, PolicySnapshot};
use crate::vsphere::credentials::Credential;
use crate::vsphere::fault::FaultProtocol;
use crate::vsphere::long_poll::WaitBound;
use crate::vsphere::operation::{Operation, Protocol};

/// The facts of one request.
pub struct Facts {
    /// The policy set (and the guarded set it implies) this request is classified and decided under.
    pub snapshot: Arc<PolicySnapshot>,
    /// The protocol the client most likely spoke, from the path alone (before classification).
    pub path_protocol: FaultProtocol,
    /// Whether the path is under `/vcguard/`: vcguard's own API or console, never forwarded.
    pub own_api: bool,
    credential: OnceLock<Option<Credential>>,
    operation: OnceLock<Operation>,
    looked_up: OnceLock<LookedUp>,
    caller: OnceLock<Caller>,
    ticket: OnceLock<TicketFacts>,
    decision: OnceLock<Arc<Decision>>,
    approval_need: OnceLock<Arc<Decision>>,
    approval: OnceLock<String>,
    wait: OnceLock<WaitBound>,
}

impl Facts {
    /// The facts of a request to `path`, decided under `snapshot`.
    pub fn new(snapshot: Arc<PolicySnapshot>, path: &str) -> Self {
        Self {
            snapshot,
            path_protocol: protocol_of_path(path),
            own_api: path.starts_with(crate::console::OWN_PREFIX),
            credential: OnceLock::new(),
            operation: OnceLock::new(),
            looked_up: OnceLock::new(),
            caller: OnceLock::new(),
            ticket: OnceLock::new(),
            decision: OnceLock::new(),
            approval_need: OnceLock::new(),
            approval: OnceLock::new(),
            wait: OnceLock::new(),
        }
    }

    /// The facts in `req`'s extensions (the audit step puts them there first).
    pub fn of<B>(req: &Request<B>) -> Option<Arc<Facts>> {
        req.extensions().get::<Arc<Facts>>().cloned()
    }

    /// The request's one credential (session header, SOAP cookie or `Authorization`), once classified.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.get().and_then(Option::as_ref)
    }

    /// What call this is, once classified; for a stored call that was looked up in vCenter,
    /// the call it turned out to make.
    pub fn operation(&self) -> Option<&Operation> {
        self.looked_up
            .get()
            .map(|found| &found.operation)
            .or_else(|| self.operation.get())
    }

    /// What a stored call turned out to do, once looked up.
    pub fn looked_up(&self) -> Option<&LookedUp> {
        self.looked_up.get()
    }

    /// Records what a stored call does (look-up); from then on it is the request's operation.
    pub fn set_looked_up(&self, found: LookedUp) {
        let _ = self.looked_up.set(found);
    }

    /// Who is calling, once identified.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.get()
    }

    /// The change ticket a guarded call carries, once checked.
    pub fn ticket(&self) -> Option<&TicketFacts> {
        self.ticket.get()
    }

    /// The policy decision on a guarded call, once decided.
    pub fn decision(&self) -> Option<&Arc<Decision>> {
        self.decision.get()
    }

    /// A denial only an approval can lift, handed from decide to approve (which sets the decision).
    pub fn approval_need(&self) -> Option<&Arc<Decision>> {
        self.approval_need.get()
    }

    /// Records a denial an approval can lift (decide).
    pub fn set_approval_need(&self, decision: Arc<Decision>) {
        let _ = self.approval_need.set(decision);
    }

    /// The approval request this call filed, or the approval it used (`apr-…`).
    pub fn approval(&self) -> Option<&str> {
        self.approval.get().map(String::as_str)
    }

    /// Records the approval request filed or the approval used (approve).
    pub fn set_approval(&self, id: String) {
        let _ = self.approval.set(id);
    }

    /// How long vCenter may take to answer by design (long polls); ordinary calls: not waiting.
    pub fn wait(&self) -> WaitBound {
        self.wait.get().copied().unwrap_or(WaitBound::NotWaiting)
    }

    /// Records a long poll's wait bound (classify).
    pub fn set_wait(&self, wait: WaitBound) {
        let _ = self.wait.set(wait);
    }

    /// Whether the call is a guarded one.
    pub fn is_guarded(&self) -> bool {
        self.operation().is_some_and(Operation::is_guarded)
    }

    /// The protocol a fault for this request is rendered in.
    pub fn fault_protocol(&self) -> FaultProtocol {
        match self.operation().map(|op| op.protocol) {
            Some(Protocol::Soap) => FaultProtocol::Soap,
            Some(Protocol::VimJson) => FaultProtocol::Json,
            Some(Protocol::Rest) => FaultProtocol::Rest,
            _ => self.path_protocol,
        }
    }

    /// Records the request's credential (classify).
    pub fn set_credential(&self, credential: Option<Credential>) {
        let _ = self.credential.set(credential);
    }

    /// Records what call this is (classify).
    pub fn set_operation(&self, operation: Operation) {
        let _ = self.operation.set(operation);
    }

    /// Records who is calling (identify).
    pub fn set_caller(&self, caller: Caller) {
        let _ = self.caller.set(caller);
    }

    /// Records the ticket facts (ticket).
    pub fn set_ticket(&self, ticket: TicketFacts) {
        let _ = self.ticket.set(ticket);
    }

    /// Records the decision (decide).
    pub fn set_decision(&self, decision: Arc<Decision>) {
        let _ = self.decision.set(decision);
    }
}

impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential holds a session token: never printed.
        f.debug_struct("Facts")
            .field("policy_set", &self.snapshot.policies.hash())
            .field("operation", &self.operation.get())
            .field("caller", &self.caller.get())
            .field("decision", &self.decision.get())
            .finish_non_exhaustive()
    }
}

/// The protocol a client most likely spoke, from the path alone.
pub fn protocol_of_path(path: &str) -> FaultProtocol {
    if path.starts_with("/sdk/vim25/") {
        FaultProtocol::Json
    } else if path == "/sdk" || path.starts_with("/sdk/") {
        FaultProtocol::Soap
    } else if path.starts_with("/api/") || path.starts_with("/rest/") {
        FaultProtocol::Rest
    } else {
        FaultProtocol::Plain
    }
}
