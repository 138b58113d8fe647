//! Reading key files: PEM sections with the `pem` crate, and which algorithm a DER key is for,
//! read with `yasna` and compared with the AlgorithmIdentifiers of rustls-pki-types.
//! Cryptographic validation is left to aws-lc-rs.
//!
//! rustls-pki-types' own PEM reader is not used for the text: it silently skips the sections it
//! has no type for, and tickets must read `RSA PUBLIC KEY` and name `ENCRYPTED PRIVATE KEY`.

use rustls::pki_types::alg_id::{self, AlgorithmIdentifier};
use yasna::{ASN1Result, BERReader};

use super::keys::KeyType;

/// Curves named in messages, by their full `id-ecPublicKey` AlgorithmIdentifier.
const CURVE_NAMES: [(AlgorithmIdentifier, &str); 3] = [
    (alg_id::ECDSA_P384, "P-384"),
    (alg_id::ECDSA_P521, "P-521"),
    (alg_id::ECDSA_P256K1, "secp256k1"),
];

/// Other key algorithms named in messages, by the OID their AlgorithmIdentifier starts with.
const ALGORITHM_NAMES: [(AlgorithmIdentifier, &str); 5] = [
    (alg_id::RSA_PSS_SHA256, "RSASSA-PSS"),
    (alg_id::ED448, "Ed448"),
    (alg_id::ML_DSA_44, "ML-DSA-44"),
    (alg_id::ML_DSA_65, "ML-DSA-65"),
    (alg_id::ML_DSA_87, "ML-DSA-87"),
];

/// Encodes `der` as a PEM section with 64-character lines and `\n` line ends.
pub(super) fn encode_pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// Decodes every PEM section of `text`; text outside sections is ignored.
pub(super) fn pem_sections(text: &str) -> Result<Vec<pem::Pem>, String> {
    let sections = pem::parse_many(text).map_err(|e| format!("malformed PEM ({e})"))?;
    if let Some(section) = sections
        .iter()
        .find(|section| section.headers().iter().next().is_some())
    {
        return Err(format!(
            "the {} section carries PEM headers (a legacy encrypted key?)",
            section.tag()
        ));
    }
    Ok(sections)
}

/// The AlgorithmIdentifier of a key: its OID and parameters, each as a whole DER element.
pub(super) struct KeyAlgorithm {
    oid: Vec<u8>,
    parameters: Option<Vec<u8>>,
}

impl KeyAlgorithm {
    fn read(reader: BERReader<'_, '_>) -> ASN1Result<Self> {
        reader.read_sequence(|seq| {
            let oid = seq.next().read_der()?;
            let parameters = seq.read_optional(|element| element.read_der())?;
            Ok(Self { oid, parameters })
        })
    }

    /// Whether this names the same algorithm as `known`, whatever the parameters.
    fn has_oid_of(&self, known: &AlgorithmIdentifier) -> bool {
        known.starts_with(&self.oid)
    }

    /// Whether this is `known`, parameters included.
    fn is(&self, known: &AlgorithmIdentifier) -> bool {
        let parameters = self.parameters.as_deref().unwrap_or_default();
        known.strip_prefix(self.oid.as_slice()) == Some(parameters)
    }

    /// The key type tickets accept for this algorithm, or why there is none.
    pub(super) fn key_type(&self) -> Result<KeyType, String> {
        if self.has_oid_of(&alg_id::RSA_ENCRYPTION) {
            Ok(KeyType::Rsa)
        } else if self.has_oid_of(&alg_id::ED25519) {
            Ok(KeyType::Ed25519)
        } else if self.is(&alg_id::ECDSA_P256) {
            Ok(KeyType::P256)
        } else if self.has_oid_of(&alg_id::ECDSA_P256) {
            Err(format!(
                "{} keys are not accepted (ES256 needs a P-256 key)",
                self.curve_name()
            ))
        } else {
            Err(format!(
                "{} keys are not accepted (RSA, P-256 or Ed25519 only)",
                self.algorithm_name()
            ))
        }
    }

    fn curve_name(&self) -> String {
        match CURVE_NAMES.iter().find(|(known, _)| self.is(known)) {
            Some((_, name)) => (*name).to_owned(),
            None => self
                .parameters
                .as_deref()
                .and_then(dotted_oid)
                .unwrap_or_else(|| "unnamed-curve".to_owned()),
        }
    }

    fn algorithm_name(&self) -> String {
        match ALGORITHM_NAMES
            .iter()
            .find(|(known, _)| self.has_oid_of(known))
        {
            Some((_, name)) => (*name).to_owned(),
            None => dotted_oid(&self.oid).unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// `OID 1.2.3` for a DER OBJECT IDENTIFIER element.
fn dotted_oid(element: &[u8]) -> Option<String> {
    let oid = yasna::parse_der(element, |reader| reader.read_oid()).ok()?;
    Some(format!("OID {oid}"))
}

/// The algorithm of a DER SubjectPublicKeyInfo.
pub(super) fn spki_algorithm(spki: &[u8]) -> Result<KeyAlgorithm, String> {
    yasna::parse_der(spki, |reader| {
        reader.read_sequence(|seq| {
            let algorithm = KeyAlgorithm::read(seq.next())?;
            seq.next().read_bitvec_bytes()?;
            Ok(algorithm)
        })
    })
    .map_err(|e| format!("not a SubjectPublicKeyInfo ({e})"))
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo`, and the private key it wraps (for RSA, the
/// PKCS#1 `RSAPrivateKey` that jsonwebtoken signs with).
pub(super) fn pkcs8_parts(pkcs8: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), String> {
    yasna::parse_der(pkcs8, |reader| {
        reader.read_sequence(|seq| {
            seq.next().read_u8()?;
            let algorithm = KeyAlgorithm::read(seq.next())?;
            let private_key = seq.next().read_bytes()?;
            // Attributes, and the public key of a version 2 key.
            while seq.read_optional(|element| element.read_der())?.is_some() {}
            Ok((algorithm, private_key))
        })
    })
    .map_err(|e| format!("not a PKCS#8 private key ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_and_framing_errors_are_reported() {
        let der: Vec<u8> = (0..=255u8).collect();
        let text = encode_pem("RSA PUBLIC KEY", &der);
        assert!(!text.contains('\r'), "{text}");
        let sections = pem_sections(&format!("junk before\n{text}junk after\n")).expect("parses");
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].tag(), "RSA PUBLIC KEY");
        assert_eq!(sections[0].contents(), der.as_slice());

        let err = pem_sections("-----BEGIN A-----\nAAAA\n-----END B-----\n").expect_err("mismatch");
        assert!(err.starts_with("malformed PEM ("), "{err}");
    }

    #[test]
    fn algorithms_are_named_from_the_pki_types_identifiers() {
        let p384 = spki_algorithm(&spki_of(&alg_id::ECDSA_P384)).expect("SPKI");
        assert_eq!(
            p384.key_type().expect_err("P-384"),
            "P-384 keys are not accepted (ES256 needs a P-256 key)"
        );
        let pss = spki_algorithm(&spki_of(&alg_id::RSA_PSS_SHA256)).expect("SPKI");
        assert_eq!(
            pss.key_type().expect_err("PSS"),
            "RSASSA-PSS keys are not accepted (RSA, P-256 or Ed25519 only)"
        );
        let p256 = spki_algorithm(&spki_of(&alg_id::ECDSA_P256)).expect("SPKI");
        assert_eq!(p256.key_type().expect("P-256"), KeyType::P256);
        assert!(spki_algorithm(b"\x30\x03\x02\x01\x00").is_err());
    }

    /// A SubjectPublicKeyInfo with `algorithm` and a dummy key.
    fn spki_of(algorithm: &AlgorithmIdentifier) -> Vec<u8> {
        yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer
                    .next()
                    .write_sequence(|writer| writer.next().write_der(algorithm));
                writer.next().write_bitvec_bytes(&[4u8; 65], 65 * 8);
            })
        })
    }
}
