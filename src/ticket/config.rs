//! The `[ticket]` configuration and the errors found while turning it into a verifier.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// Header that carries the ticket unless configured otherwise.
pub const DEFAULT_HEADER: &str = "X-Change-Ticket";
/// Pattern a plain ticket id must match unless configured otherwise.
pub const DEFAULT_PATTERN: &str = "^CHG[0-9]{7}$";
/// Clock leeway for `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Largest accepted clock leeway.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// How change tickets are recognised (`[ticket]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketConfig {
    /// HTTP header carrying the ticket; default `X-Change-Ticket`.
    pub header: String,
    /// Regex a plain ticket id must match in full; default `^CHG[0-9]{7}$`; `""` turns plain ids off.
    #[serde(deserialize_with = "pattern_or_off")]
    pub pattern: Option<String>,
    /// Signed (JWT) tickets (`[ticket.signed]`); off when absent.
    pub signed: Option<SignedConfig>,
    /// The change system tickets are checked in (`[ticket.change_system]`); off when absent.
    pub change_system: Option<super::ChangeSystemConfig>,
}

impl Default for TicketConfig {
    fn default() -> Self {
        Self {
            header: DEFAULT_HEADER.to_owned(),
            pattern: Some(DEFAULT_PATTERN.to_owned()),
            signed: None,
            change_system: None,
        }
    }
}

/// Signed tickets: who issues them, for whom, and the keys that verify them (`[ticket.signed]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConfig {
    /// Required value of the `iss` claim.
    pub issuer: String,
    /// Value the `aud` claim must contain.
    pub audience: String,
    /// Public keys of the change system: `[{ pem_file = "…" }, { jwks_file = "…" }]`.
    pub keys: Vec<KeySource>,
    /// Clock leeway in seconds for `exp` and `nbf`; default 30, at most 300.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

/// Where verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySource {
    /// A PEM file with one or more `PUBLIC KEY` (or `RSA PUBLIC KEY`) sections.
    PemFile(PathBuf),
    /// A JSON Web Key Set file (`{"keys": [...]}`) with public keys only.
    JwksFile(PathBuf),
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECS
}

fn pattern_or_off<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let pattern = String::deserialize(deserializer)?;
    Ok((!pattern.is_empty()).then_some(pattern))
}

/// Why the ticket configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TicketConfigError {
    /// The header name is not a valid HTTP header name.
    #[error("ticket.header '{0}' is not a valid HTTP header name")]
    InvalidHeader(String),
    /// The pattern does not compile.
    #[error("ticket.pattern '{pattern}' is not a valid regular expression: {source}")]
    InvalidPattern {
        /// The configured pattern.
        pattern: String,
        /// What the regex compiler said.
        #[source]
        source: Box<regex::Error>,
    },
    /// A required setting of `[ticket.signed]` is empty.
    #[error("ticket.signed.{0} must not be empty")]
    Empty(&'static str),
    /// The leeway is above [`MAX_LEEWAY_SECS`].
    #[error("ticket.signed.leeway_secs = {0} is above the maximum of {MAX_LEEWAY_SECS}")]
    LeewayTooLarge(u64),
    /// A key file cannot be read.
    #[error("cannot read ticket key file {path}: {source}")]
    KeyFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM key file holds no usable public key.
    #[error("{path} is not a PEM public key: {detail}")]
    NotPublicKey {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// A key file holds private key material.
    #[error(
        "{path} holds a private key ({detail}); configure the public key only \
         (e.g. openssl pkey -in PRIVATE.pem -pubout)"
    )]
    PrivateKeyGiven {
        /// The file.
        path: PathBuf,
        /// Which part is private.
        detail: String,
    },
    /// An RSA key is shorter than 2048 bits.
    #[error("{path}: {key} has {bits} bits; at least 2048 are required")]
    WeakRsaKey {
        /// The file.
        path: PathBuf,
        /// Which key: `RSA key`, or `RSA key 'kid'` in a JWKS.
        key: String,
        /// The modulus length.
        bits: usize,
    },
    /// A key of a type or curve tickets cannot use.
    #[error("{path}: {detail}")]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with the key.
        detail: String,
    },
    /// A JWKS file is not a JSON Web Key Set.
    #[error("{path} is not a valid JWKS file: {detail}")]
    InvalidJwks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A JWKS file has no key tickets can be verified with.
    #[error(
        "{path} has no usable keys (RSA >= 2048 bits, P-256 or Ed25519 signing keys): {skipped}"
    )]
    JwksWithoutUsableKeys {
        /// The file.
        path: PathBuf,
        /// Why each key was skipped.
        skipped: String,
    },
    /// A `[ticket.change_system]` key has a value that cannot work.
    #[error(transparent)]
    ChangeSystem(#[from] super::change_system::ChangeSystemConfigError),
    /// Two configured keys share a key id.
    #[error("key id '{kid}' is configured twice ({first} and {second})")]
    DuplicateKeyId {
        /// The key id.
        kid: String,
        /// Where it appeared first.
        first: String,
        /// Where it appeared again.
        second: String,
    },
}

impl TicketConfig {
    /// Checks the settings that need no file access.
    pub fn validate(&self) -> Result<(), TicketConfigError> {
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if self.header.is_empty() || !self.header.chars().all(is_tchar) {
            return Err(TicketConfigError::InvalidHeader(self.header.clone()));
        }
        if let Some(pattern) = &self.pattern {
            super::pattern::PatternRule::new(pattern)?;
        }
        if let Some(signed) = &self.signed {
            signed.validate()?;
        }
        if let Some(change_system) = &self.change_system {
            change_system.validate()?;
        }
        Ok(())
    }
}

impl SignedConfig {
    fn validate(&self) -> Result<(), TicketConfigError> {
        if self.issuer.is_empty() {
            return Err(TicketConfigError::Empty("issuer"));
        }
        if self.audience.is_empty() {
            return Err(TicketConfigError::Empty("audience"));
        }
        if self.keys.is_empty() {
            return Err(TicketConfigError::Empty("keys"));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(TicketConfigError::LeewayTooLarge(self.leeway_secs));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_toml() {
        let empty: TicketConfig = toml::from_str("").expect("empty table");
        assert_eq!(empty, TicketConfig::default());
        assert_eq!(empty.header, "X-Change-Ticket");
        assert_eq!(empty.pattern.as_deref(), Some("^CHG[0-9]{7}$"));

        let full: TicketConfig = toml::from_str(
            r#"
            header = "X-Change"
            pattern = ""
            [signed]
            issuer = "https://change.example.test"
            audience = "vcguard"
            keys = [{ pem_file = "/etc/vcguard/change.pem" }, { jwks_file = "/etc/vcguard/change.jwks" }]
            "#,
        )
        .expect("full table");
        assert_eq!(full.pattern, None);
        let signed = full.signed.expect("signed");
        assert_eq!(signed.leeway_secs, 30);
        assert_eq!(
            signed.keys,
            vec![
                KeySource::PemFile("/etc/vcguard/change.pem".into()),
                KeySource::JwksFile("/etc/vcguard/change.jwks".into())
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = toml::from_str::<TicketConfig>("patern = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("unknown field `patern`"), "{err}");

        let mut config = TicketConfig {
            header: "X Change".into(),
            ..TicketConfig::default()
        };
        assert_eq!(
            config.validate().expect_err("header").to_string(),
            "ticket.header 'X Change' is not a valid HTTP header name"
        );
        config.header = DEFAULT_HEADER.into();
        config.pattern = Some("CHG[".into());
        let err = config.validate().expect_err("pattern").to_string();
        assert!(
            err.starts_with("ticket.pattern 'CHG[' is not a valid regular expression"),
            "{err}"
        );
        config.pattern = None;
        config.signed = Some(SignedConfig {
            issuer: "i".into(),
            audience: "a".into(),
            keys: vec![KeySource::PemFile("k.pem".into())],
            leeway_secs: 3600,
        });
        assert_eq!(
            config.validate().expect_err("leeway").to_string(),
            "ticket.signed.leeway_secs = 3600 is above the maximum of 300"
        );
    }
}
