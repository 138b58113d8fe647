//! vcguard: a policy-enforcing reverse proxy for the VMware vSphere API.

mod accept_backoff;
pub mod admin;
pub mod approval;
pub mod audit;
pub mod body;
pub mod client;
pub mod config;
pub mod console;
pub mod demo;
pub mod fd_limit;
mod first_request;
pub mod gate;
pub mod gateway;
pub mod identity;
mod idle_connection;
pub mod metrics;
mod per_core;
pub mod policy;
pub mod reload;
pub mod server;
pub(crate) mod shipped_policies;
pub mod state;
pub mod ticket;
pub mod tls;
pub mod upstream_connect;
pub mod upstream_pool;
pub mod vsphere;
