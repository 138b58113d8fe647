//! When a pass-through call's outcome record is written, relative to the answer
//! (`[audit] outcome_write`).

use serde::Deserialize;

/// When the outcome record of a pass-through call reaches the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeWrite {
    /// Handed to the OS (write(2)) before the answer's head leaves: a crash of the gateway cannot
    /// lose the record of a call the client saw answered. Costs a hand-off to the writer thread
    /// per call.
    #[default]
    BeforeAnswer,
    /// Queued and written with the next batch (within a few milliseconds) while the answer goes
    /// out: a crash of the gateway can lose the outcomes of the last batch's calls.
    Batched,
}
