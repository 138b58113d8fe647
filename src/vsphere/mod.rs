//! vSphere protocol knowledge: paths, SOAP envelopes, typed bodies, faults.

pub mod bodies;
pub mod classify;
pub mod credentials;
mod effect_tree;
pub mod effects;
#[cfg(feature = "fuzz")]
pub mod fuzz_entry;
pub mod guarded;
pub mod indirect;
pub mod json_body;
pub mod lifecycle;
pub mod long_poll;
pub mod operation;
pub mod path;
pub mod schedule;
pub mod soap;
pub mod soap_tail;
pub mod stored_action;
mod xml_tree;

/// vSphere faults as the gateway and the simulator send them (SOAP and VI/JSON bodies).
pub use vsphere_wire::fault;
