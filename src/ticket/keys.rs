//! Verification keys from PEM and JWKS files. Each key is bound to the one algorithm its
//! type allows (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA), so a token's header can never
//! choose how its signature is checked.
//!
//! A key's id is the `kid` given in a JWKS, otherwise the first 16 hex digits of the SHA-256
//! of its DER SubjectPublicKeyInfo
//! (`openssl pkey -pubin -in KEY.pem -outform DER | sha256sum | cut -c1-16`).

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{PublicKey as RsaPublicKey, PublicKeyComponents as RsaComponents};
use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaParameters, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::config::{KeySource, TicketConfigError};
use super::pem::{pem_sections, spki_algorithm};

pub(super) const MIN_RSA_BITS: usize = 2048;
pub(super) const MAX_RSA_BITS: usize = 8192;

const JWK_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key types tickets may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyType {
    Rsa,
    P256,
    Ed25519,
}

impl KeyType {
    /// The only algorithm a key of this type verifies.
    pub(super) fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa => Algorithm::RS256,
            Self::P256 => Algorithm::ES256,
            Self::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::Rsa => &lc::RSA_PKCS1_2048_8192_SHA256,
            Self::P256 => &lc::ECDSA_P256_SHA256_FIXED,
            Self::Ed25519 => &lc::ED25519,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "P-256",
            Self::Ed25519 => "Ed25519",
        }
    }
}

/// The name a JWT header uses for `alg`.
pub(super) fn algorithm_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// A loaded verification key, for start-up logs and `ticket inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKeyInfo {
    /// The key id (`kid`) tokens may name.
    pub key_id: String,
    /// The one algorithm this key verifies: `RS256`, `ES256` or `EdDSA`.
    pub algorithm: String,
    /// The file (and JWKS entry) the key came from.
    pub source: String,
}

/// A public key ready to verify tickets.
#[derive(Clone)]
pub(super) struct TrustedKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
    pub(super) validation: Validation,
    pub(super) source: String,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// The public description of this key.
    pub(super) fn info(&self) -> TicketKeyInfo {
        TicketKeyInfo {
            key_id: self.kid.clone(),
            algorithm: algorithm_name(self.alg),
            source: self.source.clone(),
        }
    }
}

/// Why a key cannot be used; the caller adds the file name.
#[derive(Debug)]
pub(super) enum KeyProblem {
    Private(String),
    Weak(usize),
    Unsupported(String),
    Malformed(String),
}

/// Public key material of a recognised type, not yet validated.
pub(super) struct PublicParts {
    key_type: KeyType,
    /// A SubjectPublicKeyInfo, a PKCS#1 `RSAPublicKey`, an uncompressed P-256 point, or the raw
    /// Ed25519 key: whatever aws-lc-rs parses for the type.
    bytes: Vec<u8>,
}

/// The stable id of a public key: first 16 hex digits of SHA-256 over its DER SPKI.
pub(super) fn key_id(spki_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(spki_der)[..8])
}

/// Loads every configured key; key ids must be unique.
pub(super) fn load_keys(sources: &[KeySource]) -> Result<Vec<TrustedKey>, TicketConfigError> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for source in sources {
        let loaded = match source {
            KeySource::PemFile(path) => load_pem_file(path)?,
            KeySource::JwksFile(path) => load_jwks_file(path)?,
        };
        for key in loaded {
            if let Some(other) = keys.iter().find(|k| k.kid == key.kid) {
                return Err(TicketConfigError::DuplicateKeyId {
                    kid: key.kid,
                    first: other.source.clone(),
                    second: key.source,
                });
            }
            keys.push(key);
        }
    }
    Ok(keys)
}

fn read_text(path: &Path) -> Result<String, TicketConfigError> {
    let bytes = std::fs::read(path).map_err(|source| TicketConfigError::KeyFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| TicketConfigError::NotPublicKey {
        path: path.to_owned(),
        detail: "the file is binary (DER?); convert it with \
                 openssl pkey -pubin -inform DER -in KEY.der -out KEY.pem"
            .to_owned(),
    })
}

fn load_pem_file(path: &Path) -> Result<Vec<TrustedKey>, TicketConfigError> {
    let text = read_text(path)?;
    let not_public = |detail: String| TicketConfigError::NotPublicKey {
        path: path.to_owned(),
        detail,
    };
    let sections = pem_sections(&text).map_err(not_public)?;
    if let Some(private) = sections.iter().find(|s| s.tag().contains("PRIVATE KEY")) {
        return Err(TicketConfigError::PrivateKeyGiven {
            path: path.to_owned(),
            detail: format!("a {} section", private.tag()),
        });
    }
    if sections.is_empty() {
        return Err(not_public(
            "no -----BEGIN PUBLIC KEY----- section found".to_owned(),
        ));
    }
    let count = sections.len();
    let mut keys = Vec::new();
    for (index, section) in sections.into_iter().enumerate() {
        let parts = match section.tag() {
            "PUBLIC KEY" => spki_parts(section.into_contents()),
            "RSA PUBLIC KEY" => public_parts(KeyType::Rsa, section.into_contents()),
            "CERTIFICATE" => {
                return Err(not_public(
                    "it is a certificate; extract its public key with \
                     openssl x509 -in CERT.pem -pubkey -noout"
                        .to_owned(),
                ));
            }
            other => return Err(not_public(format!("found a {other} section"))),
        };
        let source = if count > 1 {
            format!("{} (key #{})", path.display(), index + 1)
        } else {
            path.display().to_string()
        };
        let key = parts
            .and_then(|parts| finish(parts, None, source))
            .map_err(|problem| file_error(path, "RSA key".to_owned(), problem, false))?;
        keys.push(key);
    }
    Ok(keys)
}

fn file_error(path: &Path, key: String, problem: KeyProblem, jwks: bool) -> TicketConfigError {
    let path = path.to_owned();
    match problem {
        KeyProblem::Private(detail) => TicketConfigError::PrivateKeyGiven { path, detail },
        KeyProblem::Weak(bits) => TicketConfigError::WeakRsaKey { path, key, bits },
        KeyProblem::Unsupported(detail) => TicketConfigError::UnsupportedKey { path, detail },
        KeyProblem::Malformed(detail) if jwks => TicketConfigError::InvalidJwks { path, detail },
        KeyProblem::Malformed(detail) => TicketConfigError::NotPublicKey { path, detail },
    }
}

/// Recognises a DER SubjectPublicKeyInfo.
fn spki_parts(spki: Vec<u8>) -> Result<PublicParts, KeyProblem> {
    let key_type = spki_algorithm(&spki)
        .map_err(KeyProblem::Malformed)?
        .key_type()
        .map_err(KeyProblem::Unsupported)?;
    public_parts(key_type, spki)
}

/// Checks the size of an RSA key (SubjectPublicKeyInfo or PKCS#1) before it is used.
fn public_parts(key_type: KeyType, bytes: Vec<u8>) -> Result<PublicParts, KeyProblem> {
    if key_type == KeyType::Rsa {
        let invalid = |e: String| KeyProblem::Malformed(format!("not an RSA public key ({e})"));
        let key = RsaPublicKey::from_der(&bytes).map_err(|e| invalid(e.to_string()))?;
        let bits =
            RsaParameters::public_modulus_len(key.as_ref()).map_err(|e| invalid(e.to_string()))?;
        check_rsa_bits(bits as usize)?;
    }
    Ok(PublicParts { key_type, bytes })
}

pub(super) fn check_rsa_bits(bits: usize) -> Result<(), KeyProblem> {
    if bits < MIN_RSA_BITS {
        return Err(KeyProblem::Weak(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyProblem::Unsupported(format!(
            "RSA key has {bits} bits; at most {MAX_RSA_BITS} are supported"
        )));
    }
    Ok(())
}

/// Validates the key with aws-lc-rs and binds it to its algorithm.
fn finish(
    parts: PublicParts,
    kid: Option<String>,
    source: String,
) -> Result<TrustedKey, KeyProblem> {
    let invalid = |e: String| {
        KeyProblem::Malformed(format!(
            "the {} key is invalid ({e})",
            parts.key_type.name()
        ))
    };
    let parsed = ParsedPublicKey::new(parts.key_type.verification(), &parts.bytes)
        .map_err(|e| invalid(e.to_string()))?;
    let spki = parsed.as_der().map_err(|e| invalid(e.to_string()))?;
    let kid = kid.unwrap_or_else(|| key_id(spki.as_ref()));
    let alg = parts.key_type.algorithm();
    // jsonwebtoken hands these bytes to aws-lc-rs, which reads a SubjectPublicKeyInfo for every
    // key type.
    let decoding = match parts.key_type {
        KeyType::Rsa => DecodingKey::from_rsa_der(spki.as_ref()),
        KeyType::P256 => DecodingKey::from_ec_der(spki.as_ref()),
        KeyType::Ed25519 => DecodingKey::from_ed_der(spki.as_ref()),
    };
    let mut validation = Validation::new(alg);
    // Time, issuer and audience are checked by the caller against its own clock, with
    // messages that name the values.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    Ok(TrustedKey {
        kid,
        alg,
        decoding,
        validation,
        source,
    })
}

enum JwkOutcome {
    Skip(String),
    Problem(KeyProblem),
}

fn load_jwks_file(path: &Path) -> Result<Vec<TrustedKey>, TicketConfigError> {
    let text = read_text(path)?;
    let invalid = |detail: String| TicketConfigError::InvalidJwks {
        path: path.to_owned(),
        detail,
    };
    let root: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let entries = root
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("expected an object with a \"keys\" array".to_owned()))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if !entry.is_object() {
            skipped.push(format!("key #{}: not an object", index + 1));
            continue;
        }
        let kid = entry.get("kid").and_then(Value::as_str);
        let label = match kid {
            Some(kid) => format!("key '{kid}'"),
            None => format!("key #{}", index + 1),
        };
        let source = format!("{} {label}", path.display());
        let outcome = jwk_parts(entry, &label).and_then(|parts| {
            finish(parts, kid.map(str::to_owned), source).map_err(JwkOutcome::Problem)
        });
        match outcome {
            Ok(key) => keys.push(key),
            Err(JwkOutcome::Skip(reason)) => skipped.push(format!("{label}: {reason}")),
            Err(JwkOutcome::Problem(problem)) => {
                return Err(file_error(path, format!("RSA {label}"), problem, true));
            }
        }
    }
    if keys.is_empty() {
        return Err(TicketConfigError::JwksWithoutUsableKeys {
            path: path.to_owned(),
            skipped: if skipped.is_empty() {
                "the set is empty".to_owned()
            } else {
                skipped.join("; ")
            },
        });
    }
    for reason in &skipped {
        tracing::warn!(file = %path.display(), "ticket key ignored: {reason}");
    }
    Ok(keys)
}

/// Reads one JWKS entry (a JSON object) with jsonwebtoken's [`Jwk`].
fn jwk_parts(entry: &Value, label: &str) -> Result<PublicParts, JwkOutcome> {
    let malformed = |detail: String| JwkOutcome::Problem(KeyProblem::Malformed(detail));
    if let Some(name) = ["d", "p", "q", "dp", "dq", "qi"]
        .into_iter()
        .find(|name| entry.get(*name).is_some())
    {
        return Err(JwkOutcome::Problem(KeyProblem::Private(format!(
            "{label} has the private parameter '{name}'"
        ))));
    }
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    if let Some(usage) = entry.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err(JwkOutcome::Skip(format!("'use' is {usage}, not \"sig\"")));
    }
    if let Some(ops) = entry.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|op| op.as_str() == Some("verify"))
    {
        return Err(JwkOutcome::Skip("'key_ops' lacks \"verify\"".to_owned()));
    }
    let jwk = Jwk::deserialize(entry)
        .map_err(|e| malformed(format!("{label} is not a JSON Web Key ({e})")))?;
    // Base64url with or without padding, as JWKS files have been accepted before.
    let decode = |name: &str, value: &str| {
        JWK_BASE64
            .decode(value)
            .map_err(|e| malformed(format!("{label}: '{name}' is not base64url ({e})")))
    };
    let coordinate = |name: &str, value: &str| {
        let bytes = decode(name, value)?;
        if bytes.len() != 32 {
            return Err(malformed(format!(
                "{label}: '{name}' has {} bytes, expected 32",
                bytes.len()
            )));
        }
        Ok(bytes)
    };
    let parts = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let components = RsaComponents {
                n: decode("n", &rsa.n)?,
                e: decode("e", &rsa.e)?,
            };
            let spki = components.as_der().map_err(|_| {
                malformed(format!("{label}: 'n' and 'e' are not an RSA public key"))
            })?;
            public_parts(KeyType::Rsa, spki.as_ref().to_vec()).map_err(JwkOutcome::Problem)?
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            // The uncompressed SEC1 point: 0x04, then x and y.
            let point = [vec![0x04], coordinate("x", &ec.x)?, coordinate("y", &ec.y)?].concat();
            PublicParts {
                key_type: KeyType::P256,
                bytes: point,
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            PublicParts {
                key_type: KeyType::Ed25519,
                bytes: coordinate("x", &okp.x)?,
            }
        }
        _ => return Err(unusable_jwk(entry, label)),
    };
    if let Some(alg) = text("alg") {
        let expected = algorithm_name(parts.key_type.algorithm());
        let fits = alg == expected || (parts.key_type == KeyType::Ed25519 && alg == "Ed25519");
        if !fits {
            return Err(JwkOutcome::Skip(format!(
                "'alg' is {alg}; {} keys verify {expected} only",
                parts.key_type.name()
            )));
        }
    }
    Ok(parts)
}

/// Why a JWKS entry that jsonwebtoken reads as no accepted key type cannot be used.
fn unusable_jwk(entry: &Value, label: &str) -> JwkOutcome {
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    let curve = text("crv").unwrap_or("(none)");
    let members: &[&str] = match text("kty") {
        None => return JwkOutcome::Skip("no 'kty'".to_owned()),
        Some("RSA") => &["n", "e"],
        Some("EC") if curve == "P-256" => &["x", "y"],
        Some("OKP") if curve == "Ed25519" => &["x"],
        Some("EC" | "OKP") => {
            return JwkOutcome::Skip(format!(
                "curve {curve} is not accepted (P-256 or Ed25519 only)"
            ));
        }
        Some("oct") => {
            return JwkOutcome::Skip("symmetric key (HMAC tickets are not accepted)".to_owned());
        }
        Some(other) => return JwkOutcome::Skip(format!("key type '{other}' is not accepted")),
    };
    let detail = match members.iter().find(|name| text(name).is_none()) {
        Some(name) => format!("{label} has no '{name}'"),
        None => format!("{label} is not a JSON Web Key"),
    };
    JwkOutcome::Problem(KeyProblem::Malformed(detail))
}
