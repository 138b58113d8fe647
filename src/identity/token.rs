//! Optional identity tokens: a signed JWT in a request header (from the organisation's SSO or
//! automation platform) that adds groups to the vCenter user of the call's session.
//!
//! vCenter stays the authority on *who* runs the call: the token's user claim must name the
//! session's user, and the token only contributes groups. Tokens are verified like signed
//! tickets (RS256, ES256, EdDSA bound to the key type; `iss`, `aud`, `exp` required, `nbf`).

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderName;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ticket::{
    JwtVerifier, KeySource, MAX_LEEWAY_SECS, TicketConfigError, TicketKeyInfo, shown,
};

/// Header that carries the identity token unless configured otherwise.
pub const DEFAULT_TOKEN_HEADER: &str = "X-Identity-Token";
/// Longest header value looked at.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Most groups one token may carry.
pub const MAX_GROUPS: usize = 64;
/// Longest group name.
const MAX_GROUP_CHARS: usize = 128;

/// `[identity.token]`: who issues identity tokens, for whom, and the keys that verify them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityTokenConfig {
    /// HTTP header carrying the token; default `X-Identity-Token`.
    #[serde(default = "default_header")]
    pub header: String,
    /// Required value of the `iss` claim.
    pub issuer: String,
    /// Value the `aud` claim must contain.
    pub audience: String,
    /// Public keys of the issuer: `[{ pem_file = "…" }, { jwks_file = "…" }]`.
    pub keys: Vec<KeySource>,
    /// Claim naming the vCenter user (must match the session's user); default `sub`.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the array of group names; default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock leeway in seconds for `exp` and `nbf`; default 30, at most 300.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_header() -> String {
    DEFAULT_TOKEN_HEADER.to_owned()
}

fn default_user_claim() -> String {
    "sub".to_owned()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_leeway() -> u64 {
    crate::ticket::DEFAULT_LEEWAY_SECS
}

/// Why the `[identity.token]` configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityTokenError {
    /// The header name is not a valid HTTP header name.
    #[error("identity.token.header '{0}' is not a valid HTTP header name")]
    InvalidHeader(String),
    /// A required setting is empty.
    #[error("identity.token.{0} must not be empty")]
    Empty(&'static str),
    /// The leeway is above the maximum.
    #[error("identity.token.leeway_secs = {0} is above the maximum of {MAX_LEEWAY_SECS}")]
    LeewayTooLarge(u64),
    /// A key could not be loaded.
    #[error("identity.token.keys: {0}")]
    Keys(#[source] TicketConfigError),
}

/// Checks identity tokens; built once from [`IdentityTokenConfig`], shared by all requests.
#[derive(Debug, Clone)]
pub struct IdentityTokenVerifier {
    header: HeaderName,
    user_claim: String,
    groups_claim: String,
    jwt: JwtVerifier,
}

/// A verified token's contribution to the principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGroups {
    /// The groups the token names (Cedar `Group` ids).
    pub groups: Vec<String>,
    /// The id of the key that verified it.
    pub key_id: String,
}

impl IdentityTokenVerifier {
    /// Validates `config` and loads its keys.
    pub fn new(config: &IdentityTokenConfig) -> Result<Self, IdentityTokenError> {
        let header = HeaderName::try_from(config.header.as_str())
            .map_err(|_| IdentityTokenError::InvalidHeader(config.header.clone()))?;
        for (name, value) in [
            ("issuer", &config.issuer),
            ("audience", &config.audience),
            ("user_claim", &config.user_claim),
            ("groups_claim", &config.groups_claim),
        ] {
            if value.trim().is_empty() {
                return Err(IdentityTokenError::Empty(name));
            }
        }
        if config.keys.is_empty() {
            return Err(IdentityTokenError::Empty("keys"));
        }
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(IdentityTokenError::LeewayTooLarge(config.leeway_secs));
        }
        let jwt = JwtVerifier::new(
            "identity token",
            &config.issuer,
            &config.audience,
            config.leeway_secs,
            &config.keys,
        )
        .map_err(IdentityTokenError::Keys)?;
        Ok(Self {
            header,
            user_claim: config.user_claim.clone(),
            groups_claim: config.groups_claim.clone(),
            jwt,
        })
    }

    /// The header the token arrives in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The loaded verification keys.
    pub fn key_info(&self) -> Vec<TicketKeyInfo> {
        self.jwt.key_info()
    }

    /// Verifies `raw` for a call whose session belongs to `session_user` at `now`; returns the
    /// groups it adds, or why it is refused.
    pub fn verify(
        &self,
        raw: &str,
        session_user: Option<&str>,
        now: SystemTime,
    ) -> Result<TokenGroups, String> {
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "the identity token is {} bytes long; at most {MAX_TOKEN_BYTES} are accepted",
                raw.len()
            ));
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verified = self
            .jwt
            .verify::<Map<String, Value>>(raw, now)
            .map_err(|rejection| rejection.reason)?;
        let claims = verified.claims;
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(user)) => user,
            Some(_) => return Err(format!("claim '{}' is not a string", self.user_claim)),
            None => return Err(format!("claim '{}' (the user) is missing", self.user_claim)),
        };
        let Some(session_user) = session_user else {
            return Err(format!(
                "the token is for '{}', but the call has no known vCenter session; \
                 a token only adds groups to the session's user",
                shown(user)
            ));
        };
        if canonical_user(user) != canonical_user(session_user) {
            return Err(format!(
                "the token is for '{}', but the session belongs to '{}'",
                shown(user),
                shown(session_user)
            ));
        }
        let groups = match claims.get(&self.groups_claim) {
            None => Vec::new(),
            Some(Value::Array(items)) => self.groups(items)?,
            Some(_) => {
                return Err(format!(
                    "claim '{}' is not an array of group names",
                    self.groups_claim
                ));
            }
        };
        Ok(TokenGroups {
            groups,
            key_id: verified.key_id,
        })
    }

    fn groups(&self, items: &[Value]) -> Result<Vec<String>, String> {
        if items.len() > MAX_GROUPS {
            return Err(format!(
                "claim '{}' names {} groups; at most {MAX_GROUPS} are accepted",
                self.groups_claim,
                items.len()
            ));
        }
        let mut groups = Vec::with_capacity(items.len());
        for item in items {
            let group = match item {
                Value::String(group) => group,
                _ => {
                    return Err(format!(
                        "claim '{}' is not an array of group names",
                        self.groups_claim
                    ));
                }
            };
            let count = group.chars().count();
            if count == 0 || count > MAX_GROUP_CHARS || group.chars().any(char::is_control) {
                return Err(format!(
                    "claim '{}': a group name must be 1 to {MAX_GROUP_CHARS} printable characters",
                    self.groups_claim
                ));
            }
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
        Ok(groups)
    }
}

/// A user name in one comparable form: `alice@corp.example` and `CORP.EXAMPLE\alice` are the
/// same user (vCenter reports the second, SSO tokens often carry the first); case is ignored.
fn canonical_user(name: &str) -> String {
    match name.rsplit_once('@') {
        Some((user, domain)) if !name.contains('\\') => format!("{domain}\\{user}"),
        _ => name.to_owned(),
    }
    .to_lowercase()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::{Value, json};

    use super::{IdentityTokenConfig, IdentityTokenError, IdentityTokenVerifier};
    use crate::ticket::{KeyKind, KeySource, generate_signing_key};

    const USER: &str = "VSPHERE.LOCAL\\ops";

    struct Fixture {
        _dir: tempfile::TempDir,
        verifier: IdentityTokenVerifier,
        private_pem: String,
        public_pem: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate_signing_key(KeyKind::Ed25519).unwrap();
        let public = dir.path().join("idp.pub.pem");
        std::fs::write(&public, &pair.public_pem).unwrap();
        let verifier = IdentityTokenVerifier::new(&config(vec![KeySource::PemFile(public)]))
            .expect("verifier");
        Fixture {
            _dir: dir,
            verifier,
            private_pem: pair.private_pem,
            public_pem: pair.public_pem,
        }
    }

    fn config(keys: Vec<KeySource>) -> IdentityTokenConfig {
        IdentityTokenConfig {
            header: super::DEFAULT_TOKEN_HEADER.into(),
            issuer: "https://sso.example.test".into(),
            audience: "vcguard".into(),
            keys,
            user_claim: "sub".into(),
            groups_claim: "groups".into(),
            leeway_secs: 0,
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims() -> Value {
        json!({
            "iss": "https://sso.example.test",
            "aud": "vcguard",
            "sub": "ops@vsphere.local",
            "exp": now() + 600,
            "groups": ["platform-team", "ops"],
        })
    }

    /// The DER inside a one-section PEM text.
    fn pem_der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn sign(f: &Fixture, claims: &Value) -> String {
        let key = EncodingKey::from_ed_der(&pem_der(&f.private_pem));
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
    }

    fn verify(f: &Fixture, token: &str, user: Option<&str>) -> Result<Vec<String>, String> {
        f.verifier
            .verify(token, user, SystemTime::now())
            .map(|found| found.groups)
    }

    fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut claims = claims();
        change(claims.as_object_mut().unwrap());
        claims
    }

    #[test]
    fn a_valid_token_for_the_session_user_adds_its_groups() {
        let f = fixture();
        let token = sign(&f, &claims());
        assert_eq!(
            verify(&f, &token, Some(USER)).unwrap(),
            ["platform-team", "ops"]
        );
        // The user in vCenter's DOMAIN\user form matches too, whatever the case.
        let token = sign(&f, &with(|c| drop(c.insert("sub".into(), json!(USER)))));
        assert!(verify(&f, &token, Some("vsphere.local\\OPS")).is_ok());
        // No groups claim: a valid token that adds nothing.
        let token = sign(&f, &with(|c| drop(c.remove("groups"))));
        assert_eq!(
            verify(&f, &token, Some(USER)).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn refusals_say_why() {
        let f = fixture();
        let other = fixture();
        let hs256_confusion = {
            let key = EncodingKey::from_secret(f.public_pem.as_bytes());
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &key).unwrap()
        };
        let alg_none = {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(claims().to_string())
            )
        };
        let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
            (
                "another user",
                sign(
                    &f,
                    &with(|c| drop(c.insert("sub".into(), json!("alice@vsphere.local")))),
                ),
                Some(USER),
                "the token is for 'alice@vsphere.local', but the session belongs to 'VSPHERE.LOCAL\\ops'",
            ),
            (
                "no session",
                sign(&f, &claims()),
                None,
                "the call has no known vCenter session",
            ),
            (
                "expired",
                sign(
                    &f,
                    &with(|c| drop(c.insert("exp".into(), json!(now() - 60)))),
                ),
                Some(USER),
                "identity token expired at",
            ),
            (
                "not yet valid",
                sign(
                    &f,
                    &with(|c| drop(c.insert("nbf".into(), json!(now() + 600)))),
                ),
                Some(USER),
                "identity token not valid before",
            ),
            (
                "no expiry",
                sign(&f, &with(|c| drop(c.remove("exp")))),
                Some(USER),
                "signed identity tokens must expire",
            ),
            (
                "wrong issuer",
                sign(
                    &f,
                    &with(|c| drop(c.insert("iss".into(), json!("https://evil.test")))),
                ),
                Some(USER),
                "issuer 'https://evil.test' is not the configured 'https://sso.example.test'",
            ),
            (
                "wrong audience",
                sign(&f, &with(|c| drop(c.insert("aud".into(), json!("other"))))),
                Some(USER),
                "audience 'other' is not the configured 'vcguard'",
            ),
            (
                "forged (another key)",
                sign(&other, &claims()),
                Some(USER),
                "signature does not verify",
            ),
            (
                "alg none",
                alg_none,
                Some(USER),
                "'alg: none' identity tokens are not accepted",
            ),
            (
                "HS256 with the public key as secret",
                hs256_confusion,
                Some(USER),
                "algorithm HS256 is not accepted",
            ),
            (
                "groups not an array",
                sign(
                    &f,
                    &with(|c| drop(c.insert("groups".into(), json!("platform-team")))),
                ),
                Some(USER),
                "claim 'groups' is not an array of group names",
            ),
            (
                "no user claim",
                sign(&f, &with(|c| drop(c.remove("sub")))),
                Some(USER),
                "claim 'sub' (the user) is missing",
            ),
            (
                "not a JWT",
                "CHG0012345".into(),
                Some(USER),
                "malformed identity token",
            ),
        ];
        for (name, token, user, expected) in cases {
            let err = verify(&f, &token, user).expect_err(name);
            assert!(err.contains(expected), "{name}: {err}");
            assert!(
                !err.contains(&token),
                "{name}: the message quotes the token"
            );
        }
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let err = IdentityTokenVerifier::new(&config(Vec::new())).unwrap_err();
        assert_eq!(err.to_string(), "identity.token.keys must not be empty");
        let missing = config(vec![KeySource::PemFile("/nonexistent/idp.pem".into())]);
        let err = IdentityTokenVerifier::new(&missing).unwrap_err();
        assert!(matches!(err, IdentityTokenError::Keys(_)));
        assert!(err.to_string().contains("/nonexistent/idp.pem"), "{err}");
        let mut bad_header = config(vec![KeySource::PemFile("x".into())]);
        bad_header.header = "Bad Header".into();
        let err = IdentityTokenVerifier::new(&bad_header).unwrap_err();
        assert!(err.to_string().contains("'Bad Header'"), "{err}");
    }
}
