//! What the vcguard gateway and its vCenter simulator share on the wire: the vSphere fault
//! bodies both send (SOAP and VI/JSON), and self-signed TLS identities with their thumbprints.

pub mod fault;
pub mod tls_identity;
