//! `vcguard ticket mint`: signing tickets with a private key, for demos and for change systems
//! that shell out to vcguard; plus key generation and TTL parsing.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::error::{KeyRejected, Unspecified};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::{PemObject as _, SectionKind};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Serialize;

use super::keys::{KeyProblem, KeyType, check_rsa_bits, key_id};
use super::pem::{encode_pem, pem_sections, pkcs8_parts};
use super::signed::check_id;
use super::unix_secs;

/// Why a ticket or key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The key file cannot be read.
    #[error("cannot read signing key {path}: {source}")]
    KeyFileUnreadable {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no usable private key.
    #[error("{path} is not a usable private key: {detail}")]
    NotPrivateKey {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The request is incomplete or inconsistent.
    #[error("cannot mint the ticket: {0}")]
    InvalidRequest(String),
    /// A TTL such as `4h` could not be read.
    #[error("invalid ttl '{input}': {detail}")]
    InvalidTtl {
        /// What was given.
        input: String,
        /// What is wrong.
        detail: String,
    },
    /// A key-type name was not recognised.
    #[error("unknown key type '{0}' (ed25519, p256 or rsa)")]
    UnknownKeyKind(String),
    /// The crypto library failed to generate a key.
    #[error("key generation failed")]
    KeyGeneration,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// A key type for [`generate_signing_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Ed25519, signing EdDSA tickets (the default).
    Ed25519,
    /// ECDSA on P-256, signing ES256 tickets.
    P256,
    /// RSA 3072 bits, signing RS256 tickets.
    Rsa,
}

impl FromStr for KeyKind {
    type Err = MintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" | "eddsa" => Ok(Self::Ed25519),
            "p256" | "p-256" | "es256" | "ecdsa" => Ok(Self::P256),
            "rsa" | "rs256" => Ok(Self::Rsa),
            _ => Err(MintError::UnknownKeyKind(s.to_owned())),
        }
    }
}

/// A freshly generated key pair in PEM; `Debug` does not show the private key.
#[derive(Clone)]
pub struct SigningKeyPair {
    /// PKCS#8 `PRIVATE KEY` PEM, for `ticket mint`.
    pub private_pem: String,
    /// SubjectPublicKeyInfo `PUBLIC KEY` PEM, for `ticket.signed.keys`.
    pub public_pem: String,
    /// The key id tickets signed with this key carry in `kid`.
    pub key_id: String,
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("private_pem", &"[redacted]")
            .field("public_pem", &self.public_pem)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// Generates a signing key pair with aws-lc-rs (PKCS#8 v1, as `openssl genpkey` writes).
pub fn generate_signing_key(kind: KeyKind) -> Result<SigningKeyPair, MintError> {
    let generated = || match kind {
        KeyKind::Ed25519 => {
            let pair = Ed25519KeyPair::generate()?;
            pem_pair(pair.to_pkcs8v1()?.as_ref(), pair.public_key())
        }
        KeyKind::P256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
            pem_pair(pair.to_pkcs8v1()?.as_ref(), pair.public_key())
        }
        KeyKind::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa3072)?;
            pem_pair(pair.as_der()?.as_ref(), pair.public_key())
        }
    };
    generated().map_err(|_: Unspecified| MintError::KeyGeneration)
}

fn pem_pair(
    private_pkcs8: &[u8],
    public: &impl AsDer<PublicKeyX509Der<'static>>,
) -> Result<SigningKeyPair, Unspecified> {
    let spki = public.as_der()?;
    Ok(SigningKeyPair {
        private_pem: encode_pem("PRIVATE KEY", private_pkcs8),
        public_pem: encode_pem("PUBLIC KEY", spki.as_ref()),
        key_id: key_id(spki.as_ref()),
    })
}

/// What a minted ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The change id (claim `ticket`).
    pub id: String,
    /// Host moIds or names the ticket covers (claim `hosts`).
    pub hosts: Vec<String>,
    /// vim method names the ticket covers (claim `actions`).
    pub actions: Vec<String>,
    /// Lifetime from `not_before` (or now) to `exp`.
    pub ttl: Duration,
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Start of validity (`nbf`); now when absent.
    pub not_before: Option<SystemTime>,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    ticket: &'a str,
    hosts: &'a [String],
    actions: &'a [String],
}

/// A private key ready to sign, with the algorithm its type dictates.
pub(super) struct SigningKey {
    pub(super) alg: Algorithm,
    pub(super) encoding: EncodingKey,
    pub(super) kid: String,
}

/// Signs a ticket with the private key in `key_pem` (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA).
pub fn mint(key_pem: &Path, claims: MintRequest) -> Result<String, MintError> {
    let shown = key_pem.display().to_string();
    let text = std::fs::read_to_string(key_pem).map_err(|source| MintError::KeyFileUnreadable {
        path: shown.clone(),
        source,
    })?;
    let key = signing_key_from_pem(&text, &shown)?;
    mint_with(&key, &claims, SystemTime::now())
}

/// Signs `request` with `key`, issued at `now`.
pub(super) fn mint_with(
    key: &SigningKey,
    request: &MintRequest,
    now: SystemTime,
) -> Result<String, MintError> {
    let invalid = |detail: &str| Err(MintError::InvalidRequest(detail.to_owned()));
    check_id(&request.id).map_err(MintError::InvalidRequest)?;
    if request.hosts.is_empty() || request.hosts.iter().any(String::is_empty) {
        return invalid("give at least one host, and no empty host");
    }
    if request.actions.is_empty() || request.actions.iter().any(String::is_empty) {
        return invalid("give at least one action, and no empty action");
    }
    if request.issuer.is_empty() || request.audience.is_empty() {
        return invalid("issuer and audience must not be empty");
    }
    if request.ttl.as_secs() == 0 {
        return invalid("the ttl must be at least one second");
    }
    let iat = unix_secs(now);
    let nbf = request.not_before.map(unix_secs).unwrap_or(iat);
    let claims = MintedClaims {
        iss: &request.issuer,
        aud: &request.audience,
        iat,
        nbf,
        exp: nbf.saturating_add(request.ttl.as_secs()),
        ticket: &request.id,
        hosts: &request.hosts,
        actions: &request.actions,
    };
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
}

/// Reads a private key: PKCS#8 (RSA, P-256, Ed25519), PKCS#1 RSA, or SEC1 P-256.
pub(super) fn signing_key_from_pem(text: &str, path: &str) -> Result<SigningKey, MintError> {
    let not_private = |detail: String| MintError::NotPrivateKey {
        path: path.to_owned(),
        detail,
    };
    let sections = pem_sections(text).map_err(not_private)?;
    let Some(section) = sections.into_iter().next() else {
        return Err(not_private(
            "no PEM section labelled PRIVATE KEY found".to_owned(),
        ));
    };
    let tag = section.tag().to_owned();
    let key = match tag.as_str() {
        "ENCRYPTED PRIVATE KEY" => Err(
            "the key is encrypted; decrypt it first (openssl pkcs8 -in KEY.pem -out PLAIN.pem)"
                .to_owned(),
        ),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            Err("it is a public key; minting needs the private key".to_owned())
        }
        _ => SectionKind::try_from(tag.as_bytes())
            .ok()
            .and_then(|kind| PrivateKeyDer::from_pem(kind, section.into_contents()))
            .ok_or_else(|| format!("found a {tag} section"))
            .and_then(|private| signing_key(&private)),
    };
    key.map_err(not_private)
}

/// Binds a private key to the algorithm its type dictates.
fn signing_key(private: &PrivateKeyDer<'_>) -> Result<SigningKey, String> {
    let rejected =
        |what: &'static str| move |e: KeyRejected| format!("the {what} key is invalid ({e})");
    match private {
        PrivateKeyDer::Pkcs8(pkcs8) => {
            let der = pkcs8.secret_pkcs8_der();
            let (algorithm, inner) = pkcs8_parts(der)?;
            match algorithm.key_type()? {
                KeyType::Rsa => {
                    let pair = RsaKeyPair::from_pkcs8(der).map_err(rejected("RSA"))?;
                    rsa_key(&pair, &inner)
                }
                KeyType::P256 => {
                    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(rejected("P-256"))?;
                    p256_key(&pair, pkcs8)
                }
                KeyType::Ed25519 => {
                    let pair = Ed25519KeyPair::from_pkcs8(der).map_err(rejected("Ed25519"))?;
                    Ok(SigningKey {
                        alg: Algorithm::EdDSA,
                        encoding: EncodingKey::from_ed_der(der),
                        kid: public_key_id(pair.public_key())?,
                    })
                }
            }
        }
        PrivateKeyDer::Pkcs1(pkcs1) => {
            let der = pkcs1.secret_pkcs1_der();
            rsa_key(&RsaKeyPair::from_der(der).map_err(rejected("RSA"))?, der)
        }
        PrivateKeyDer::Sec1(sec1) => {
            let pair = EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                sec1.secret_sec1_der(),
            )
            .map_err(rejected("P-256"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(underivable)?;
            p256_key(&pair, &PrivatePkcs8KeyDer::from(pkcs8.as_ref()))
        }
        _ => Err("the private key format is not supported".to_owned()),
    }
}

fn underivable(_: Unspecified) -> String {
    "the public key cannot be derived".to_owned()
}

fn public_key_id(public: &impl AsDer<PublicKeyX509Der<'static>>) -> Result<String, String> {
    Ok(key_id(public.as_der().map_err(underivable)?.as_ref()))
}

/// A P-256 signing key from its key pair and PKCS#8 (what jsonwebtoken signs with).
fn p256_key(pair: &EcdsaKeyPair, pkcs8: &PrivatePkcs8KeyDer<'_>) -> Result<SigningKey, String> {
    Ok(SigningKey {
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.secret_pkcs8_der()),
        kid: public_key_id(pair.public_key())?,
    })
}

/// An RSA signing key from its key pair and PKCS#1 `RSAPrivateKey` (what jsonwebtoken signs with).
fn rsa_key(pair: &RsaKeyPair, pkcs1: &[u8]) -> Result<SigningKey, String> {
    match check_rsa_bits(pair.public_modulus_len() * 8) {
        Ok(()) => {}
        Err(KeyProblem::Weak(bits)) => {
            return Err(format!(
                "the RSA key has {bits} bits; at least 2048 are required"
            ));
        }
        Err(
            KeyProblem::Unsupported(detail)
            | KeyProblem::Malformed(detail)
            | KeyProblem::Private(detail),
        ) => return Err(detail),
    }
    Ok(SigningKey {
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(pkcs1),
        kid: public_key_id(pair.public_key())?,
    })
}

/// Reads a lifetime such as `4h`, `30m`, `90s`, `1d` or `1h30m`.
pub fn parse_ttl(input: &str) -> Result<Duration, MintError> {
    let invalid = |detail: &str| MintError::InvalidTtl {
        input: input.to_owned(),
        detail: detail.to_owned(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid("empty; use e.g. 4h, 30m, 90s or 1d"));
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let value = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)))
                .ok_or_else(|| invalid("too large"))?;
            number = Some(value);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid("units are s, m, h and d, e.g. 4h or 1h30m")),
        };
        let value = number
            .take()
            .ok_or_else(|| invalid("a unit must follow a number, e.g. 4h"))?;
        total = value
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| invalid("too large"))?;
    }
    if number.is_some() {
        return Err(invalid("the number has no unit; use s, m, h or d, e.g. 4h"));
    }
    if total == 0 {
        return Err(invalid("must be at least 1s"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        let secs = |s: &str| parse_ttl(s).expect(s).as_secs();
        assert_eq!(secs("4h"), 4 * 3600);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1h30m"), 5400);
        let err = |s: &str| parse_ttl(s).expect_err(s).to_string();
        assert_eq!(
            err("4"),
            "invalid ttl '4': the number has no unit; use s, m, h or d, e.g. 4h"
        );
        assert_eq!(
            err("4w"),
            "invalid ttl '4w': units are s, m, h and d, e.g. 4h or 1h30m"
        );
        assert_eq!(
            err("h"),
            "invalid ttl 'h': a unit must follow a number, e.g. 4h"
        );
        assert_eq!(err("0s"), "invalid ttl '0s': must be at least 1s");
        assert_eq!(
            err(""),
            "invalid ttl '': empty; use e.g. 4h, 30m, 90s or 1d"
        );
        assert_eq!(
            err("99999999999999999999d"),
            "invalid ttl '99999999999999999999d': too large"
        );
    }

    #[test]
    fn key_kind_names() {
        assert_eq!("Ed25519".parse::<KeyKind>().expect("ed"), KeyKind::Ed25519);
        assert_eq!("es256".parse::<KeyKind>().expect("p256"), KeyKind::P256);
        assert_eq!("rsa".parse::<KeyKind>().expect("rsa"), KeyKind::Rsa);
        assert!("dsa".parse::<KeyKind>().is_err());
    }

    #[test]
    fn generated_key_debug_hides_the_private_key() {
        let pair = generate_signing_key(KeyKind::Ed25519).expect("generates");
        assert!(
            pair.private_pem
                .starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----"))
        );
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(pair.key_id.len(), 16);
        let debug = format!("{pair:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("PRIVATE KEY"));
    }
}
