//! Self-signed TLS identities, server configurations and SHA-256 thumbprints as vSphere
//! admins write them.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The crypto provider every TLS configuration uses (aws-lc-rs).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server config from an in-memory chain and key: HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 of a DER certificate as vSphere admins write it: `AA:BB:...`.
pub fn thumbprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A freshly generated self-signed certificate with its key, in PEM and DER.
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (never written into the repository).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, DER.
    pub key_der: PrivateKeyDer<'static>,
}

impl SelfSigned {
    /// Generates a certificate valid for `names` (DNS names or IP literals).
    pub fn generate(names: &[&str]) -> Result<Self, rcgen::Error> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: signing_key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(signing_key.serialize_der().into()),
        })
    }

    /// Its SHA-256 thumbprint, `AA:BB:...`.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.cert_der)
    }

    /// A server config presenting this certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        server_config_from(vec![self.cert_der.clone()], self.key_der.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_identity_serves_h2_and_http1_with_its_own_thumbprint() {
        let identity = SelfSigned::generate(&["localhost", "127.0.0.1"]).expect("generate");
        let config = identity.server_config().expect("server config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let other = SelfSigned::generate(&["localhost"]).expect("generate");
        assert_ne!(identity.thumbprint(), other.thumbprint());
        assert_eq!(identity.thumbprint(), thumbprint(&identity.cert_der));
        assert!(identity.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
