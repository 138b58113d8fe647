//! vcguard: a policy-enforcing reverse proxy for the VMware vSphere API.

pub mod admin;
pub mod body;
pub mod config;
pub mod demo;
pub mod gate;
pub mod gateway;
pub mod metrics;
pub mod server;
pub mod sim;
pub mod tls;
/// vSphere protocol knowledge (temporary inline map while classification is integrated).
pub mod vsphere {
    pub mod fault;
}
