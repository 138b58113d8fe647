//! rustls configurations: the client-facing server side, and the vCenter-facing
//! client side with CA roots, a pinned SHA-256 thumbprint, or (loudly) no checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};
use vsphere_wire::tls_identity::crypto_provider;
pub use vsphere_wire::tls_identity::{SelfSigned, server_config_from, thumbprint};

use crate::config::UpstreamTrust;

/// Why a TLS configuration could not be built; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The private key does not belong to the certificate, or rustls refused the pair.
    #[error(
        "the private key in {key} (server.key) does not fit the certificate in {cert} (server.cert): {source}"
    )]
    CertKeyPair {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// rustls' reason, e.g. a key mismatch.
        source: rustls::Error,
    },
    /// rustls refused the certificate/key combination or settings.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate could not be generated.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Loads every certificate from a PEM file (a chain, or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(format!("cannot read certificates: {err}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(format!("malformed PEM certificate: {err}")))?;
    if certs.is_empty() {
        return Err(pem_error("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| TlsError::Pem {
        path: path.to_owned(),
        message: format!("no usable private key: {err}"),
    })
}

/// The client-facing server config: HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from(load_certs(cert)?, load_key(key)?).map_err(|source| TlsError::CertKeyPair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The vCenter-facing client config for `trust` (ALPN is set by the connector: HTTP/1.1).
/// A plain-HTTP upstream gets a config that trusts nothing, as it is never used.
pub fn upstream_client_config(trust: &UpstreamTrust) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        UpstreamTrust::PlainHttp => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        UpstreamTrust::SystemRoots => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|err| TlsError::Pem {
                    path: path.clone(),
                    message: format!("not a usable CA certificate: {err}"),
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::Thumbprint(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(Some(*expected))))
            .with_no_client_auth(),
        UpstreamTrust::InsecureSkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(None)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts exactly the end-entity certificate with a pinned SHA-256, or any when `pin` is `None`.
///
/// Pinning replaces chain and name checks (vCenter certificates are often self-signed);
/// the handshake signature is still verified against the presented certificate.
#[derive(Debug)]
struct PinnedCertVerifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    fn new(pin: Option<[u8; 32]>) -> Self {
        Self {
            pin,
            provider: crypto_provider(),
        }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "vCenter certificate thumbprint {} does not match the pinned upstream.thumbprint",
                thumbprint(end_entity)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_colon_separated_sha256() {
        let cert = SelfSigned::generate(&["localhost"]).expect("generate");
        let print = cert.thumbprint();
        assert_eq!(print.len(), 32 * 3 - 1);
        assert_eq!(
            crate::config::parse_thumbprint(&print),
            Some(Sha256::digest(cert.cert_der.as_ref()).into())
        );
    }

    #[test]
    fn a_key_of_another_certificate_names_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = SelfSigned::generate(&["localhost"]).expect("generate");
        let other = SelfSigned::generate(&["localhost"]).expect("generate");
        let cert = dir.path().join("gateway-cert.pem");
        let key = dir.path().join("other-key.pem");
        std::fs::write(&cert, &one.cert_pem).expect("write cert");
        std::fs::write(&key, &other.key_pem).expect("write key");
        let err = server_config(&cert, &key).expect_err("mismatched pair");
        let text = err.to_string();
        assert!(
            text.contains("gateway-cert.pem") && text.contains("other-key.pem"),
            "{text}"
        );
        std::fs::write(&key, &one.key_pem).expect("write matching key");
        assert!(server_config(&cert, &key).is_ok());
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not pem").expect("write");
        let err = load_certs(&path).expect_err("no certs");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let err = load_key(&path).expect_err("no key");
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }
}
