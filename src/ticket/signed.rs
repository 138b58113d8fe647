//! Signed tickets: JWTs whose signature is verified with `jsonwebtoken` against the configured
//! keys, and whose issuer, audience and time window are checked against the caller's clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::config::{KeySource, SignedConfig, TicketConfigError};
use super::keys::{TicketKeyInfo, TrustedKey, algorithm_name, load_keys};
use super::{TicketTarget, rfc3339, shown};

/// Longest accepted ticket id.
pub(super) const MAX_ID_CHARS: usize = 128;

/// Verifies JWT tickets against the configured issuer, audience and keys.
#[derive(Debug, Clone)]
pub(super) struct SignedVerifier {
    jwt: JwtVerifier,
}

/// Verifies any JWT the gateway accepts (tickets, identity tokens): header, algorithm bound to
/// the key, signature, issuer, audience, `exp` (required) and `nbf`. Messages name the token
/// by `noun` ("ticket", "identity token").
#[derive(Debug, Clone)]
pub(crate) struct JwtVerifier {
    noun: &'static str,
    issuer: String,
    audience: String,
    leeway_secs: u64,
    keys: Vec<TrustedKey>,
}

/// A JWT whose signature, issuer, audience and time window hold.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedJwt<C> {
    /// The token's own claims.
    pub(crate) claims: C,
    /// `exp`, unix seconds.
    pub(crate) expires_at: u64,
    /// The id of the key that verified the signature.
    pub(crate) key_id: String,
    /// The algorithm of that key.
    pub(crate) alg: Algorithm,
}

/// Why a JWT is refused; `claims` is set when the signature verified but a claim failed.
#[derive(Debug, Clone)]
pub(crate) struct JwtRejection<C> {
    /// The claims of a token with a valid signature.
    pub(crate) claims: Option<C>,
    /// The operator-facing reason.
    pub(crate) reason: String,
}

/// Claims of a ticket whose signature, issuer, audience and time window hold.
#[derive(Debug, Clone)]
pub(super) struct VerifiedClaims {
    pub(super) id: String,
    pub(super) hosts: Vec<String>,
    pub(super) actions: Vec<String>,
    pub(super) expires_at: u64,
    pub(super) key_id: String,
    pub(super) alg: Algorithm,
}

/// Why a signed ticket is refused; `id` is set once the signature has verified.
#[derive(Debug, Clone)]
pub(super) struct Rejection {
    pub(super) id: Option<String>,
    pub(super) reason: String,
}

fn refuse(reason: impl Into<String>) -> Rejection {
    Rejection {
        id: None,
        reason: reason.into(),
    }
}

fn malformed(detail: impl std::fmt::Display) -> Rejection {
    refuse(format!("malformed ticket: {detail}"))
}

/// The header fields verification looks at; a repeated field is an error, not a choice.
#[derive(Deserialize)]
struct HeaderFields {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

/// The registered claims every accepted JWT is checked against.
#[derive(Deserialize)]
struct RegisteredClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
}

/// A token's registered claims and, separately, the claims its user reads.
#[derive(Deserialize)]
struct WithRegistered<C> {
    #[serde(flatten)]
    registered: RegisteredClaims,
    #[serde(flatten)]
    own: C,
}

#[derive(Debug, Clone, Deserialize)]
struct TicketClaims {
    ticket: Option<String>,
    hosts: Option<Vec<String>>,
    actions: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Whether `raw` has the shape of a compact JWS: three base64url segments, the last may be empty.
pub(super) fn looks_like_jwt(raw: &str) -> bool {
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut segments = raw.split('.');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(header), Some(payload), Some(signature), None) => {
            !header.is_empty()
                && !payload.is_empty()
                && base64url(header)
                && base64url(payload)
                && base64url(signature)
        }
        _ => false,
    }
}

/// Decodes one base64url JSON-object segment of a JWT, without verifying anything.
pub(super) fn decode_segment(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    decode_segment_with_json(segment, what).map(|(map, _)| map)
}

/// [`decode_segment`], also returning the JSON text for a stricter second parse.
fn decode_segment_with_json(
    segment: &str,
    what: &str,
) -> Result<(Map<String, Value>, Vec<u8>), String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| format!("the {what} is not base64url"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok((map, bytes)),
        Ok(_) => Err(format!("the {what} is not a JSON object")),
        Err(e) => Err(format!("the {what} is not JSON ({e})")),
    }
}

/// Checks a valid ticket id: 1 to 128 characters, none of them control characters.
pub(super) fn check_id(id: &str) -> Result<(), String> {
    let count = id.chars().count();
    if count == 0 || count > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(format!(
            "the ticket id must be 1 to {MAX_ID_CHARS} printable characters"
        ));
    }
    Ok(())
}

/// The accepted algorithm named by the header, or why the header is refused.
/// The accepted algorithm named by the header, or why the header is refused.
fn header_algorithm(alg: Option<&Value>, noun: &str) -> Result<Algorithm, String> {
    let alg = match alg {
        None => return Err(format!("malformed {noun}: the header has no 'alg'")),
        Some(Value::String(alg)) => alg,
        Some(_) => {
            return Err(format!(
                "malformed {noun}: the header's 'alg' is not a string"
            ));
        }
    };
    match alg.as_str() {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        none if none.eq_ignore_ascii_case("none") => {
            Err(format!("'alg: none' {noun}s are not accepted"))
        }
        other => Err(format!(
            "algorithm {} is not accepted (RS256, ES256, EdDSA only)",
            shown(other)
        )),
    }
}

fn numeric_date(value: &serde_json::Number, claim: &str, noun: &str) -> Result<u64, String> {
    if let Some(secs) = value.as_u64() {
        return Ok(secs);
    }
    match value.as_f64() {
        Some(secs) if secs.is_finite() && secs >= 0.0 && secs < u64::MAX as f64 => {
            Ok(secs.floor() as u64)
        }
        _ => Err(format!(
            "malformed {noun}: claim '{claim}' is not a time in seconds since 1970"
        )),
    }
}

impl JwtVerifier {
    /// Loads `keys`; tokens must come from `issuer` for `audience`.
    pub(crate) fn new(
        noun: &'static str,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        keys: &[KeySource],
    ) -> Result<Self, TicketConfigError> {
        Ok(Self {
            noun,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_secs,
            keys: load_keys(keys)?,
        })
    }

    /// The loaded keys.
    pub(crate) fn key_info(&self) -> Vec<TicketKeyInfo> {
        self.keys.iter().map(TrustedKey::info).collect()
    }

    fn malformed<C>(&self, detail: impl std::fmt::Display) -> JwtRejection<C> {
        self.refuse(format!("malformed {}: {detail}", self.noun))
    }

    fn refuse<C>(&self, reason: impl Into<String>) -> JwtRejection<C> {
        JwtRejection {
            claims: None,
            reason: reason.into(),
        }
    }

    /// Verifies signature, issuer, audience and time window of `raw` at `now` (unix seconds)
    /// and returns the claims as `C`.
    pub(crate) fn verify<C: DeserializeOwned>(
        &self,
        raw: &str,
        now: u64,
    ) -> Result<VerifiedJwt<C>, JwtRejection<C>> {
        let noun = self.noun;
        let header_segment = raw.split('.').next().unwrap_or_default();
        let (_, header_json) =
            decode_segment_with_json(header_segment, "header").map_err(|e| self.malformed(e))?;
        let header: HeaderFields = serde_json::from_slice(&header_json)
            .map_err(|e| self.malformed(format!("the header is ambiguous ({e})")))?;
        let alg = header_algorithm(header.alg.as_ref(), noun).map_err(|r| self.refuse(r))?;
        if let Some(crit) = &header.crit {
            return Err(self.refuse(format!(
                "the header marks extensions as critical ({}); none are supported",
                shown(&crit.to_string())
            )));
        }
        serde_json::from_slice::<Header>(&header_json)
            .map_err(|e| self.malformed(format!("the header has an unexpected shape ({e})")))?;
        let kid = match &header.kid {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(self.malformed("the header's 'kid' is not a string")),
        };

        let named = kid.and_then(|kid| self.keys.iter().find(|key| key.kid == kid));
        let candidates: Vec<&TrustedKey> = match named {
            Some(key) if key.alg != alg => {
                return Err(self.refuse(format!(
                    "the {noun} is signed with {} but names key '{}', which verifies {} only",
                    algorithm_name(alg),
                    key.kid,
                    algorithm_name(key.alg)
                )));
            }
            Some(key) => vec![key],
            None => self.keys.iter().filter(|key| key.alg == alg).collect(),
        };
        if candidates.is_empty() {
            let configured: Vec<String> = self
                .keys
                .iter()
                .map(|key| format!("{} '{}'", algorithm_name(key.alg), key.kid))
                .collect();
            return Err(self.refuse(format!(
                "no configured key verifies {} {noun}s (configured: {})",
                algorithm_name(alg),
                configured.join(", ")
            )));
        }

        for key in &candidates {
            match jsonwebtoken::decode::<WithRegistered<C>>(raw, &key.decoding, &key.validation) {
                Ok(data) => return self.check_registered(data.claims, key, now),
                Err(error) => match error.kind() {
                    ErrorKind::InvalidSignature => continue,
                    ErrorKind::Json(e) => {
                        return Err(self.malformed(format!(
                            "the claims do not have the expected shape ({e})"
                        )));
                    }
                    ErrorKind::Base64(_) => {
                        return Err(self.malformed("a segment is not base64url"));
                    }
                    ErrorKind::Utf8(_) => return Err(self.malformed("the claims are not UTF-8")),
                    _ => {
                        return Err(self.refuse(format!("the {noun} cannot be verified ({error})")));
                    }
                },
            }
        }

        let alg = algorithm_name(alg);
        Err(self.refuse(match (kid, named) {
            (Some(kid), Some(_)) => format!("signature does not verify with key '{kid}'"),
            (Some(kid), None) => format!(
                "signature does not verify (kid '{}' names no configured key, and no configured {alg} key verifies it)",
                shown(kid)
            ),
            (None, _) => format!("signature does not verify with any configured {alg} key"),
        }))
    }

    fn check_registered<C>(
        &self,
        claims: WithRegistered<C>,
        key: &TrustedKey,
        now: u64,
    ) -> Result<VerifiedJwt<C>, JwtRejection<C>> {
        let noun = self.noun;
        let WithRegistered { registered, own } = claims;
        match self.check_window(registered, noun, now) {
            Ok(expires_at) => Ok(VerifiedJwt {
                claims: own,
                expires_at,
                key_id: key.kid.clone(),
                alg: key.alg,
            }),
            Err(reason) => Err(JwtRejection {
                claims: Some(own),
                reason,
            }),
        }
    }

    /// Issuer, audience and time window; returns `exp`.
    fn check_window(&self, claims: RegisteredClaims, noun: &str, now: u64) -> Result<u64, String> {
        match claims.iss {
            None => {
                return Err(format!(
                    "issuer is missing; the configured issuer is '{}'",
                    self.issuer
                ));
            }
            Some(iss) if iss != self.issuer => {
                return Err(format!(
                    "issuer '{}' is not the configured '{}'",
                    shown(&iss),
                    self.issuer
                ));
            }
            Some(_) => {}
        }
        match claims.aud {
            None => {
                return Err(format!(
                    "audience is missing; the configured audience is '{}'",
                    self.audience
                ));
            }
            Some(Audience::One(aud)) if aud != self.audience => {
                return Err(format!(
                    "audience '{}' is not the configured '{}'",
                    shown(&aud),
                    self.audience
                ));
            }
            Some(Audience::Many(list)) if !list.contains(&self.audience) => {
                let quoted: Vec<String> = list.iter().map(|a| format!("'{}'", shown(a))).collect();
                return Err(format!(
                    "audience [{}] does not include the configured '{}'",
                    quoted.join(", "),
                    self.audience
                ));
            }
            Some(_) => {}
        }

        let Some(exp) = claims.exp else {
            return Err(format!(
                "malformed {noun}: claim 'exp' is missing; signed {noun}s must expire"
            ));
        };
        let expires_at = numeric_date(&exp, "exp", noun)?;
        if now >= expires_at.saturating_add(self.leeway_secs) {
            return Err(format!("{noun} expired at {}", rfc3339(expires_at)));
        }
        if let Some(nbf) = claims.nbf {
            let not_before = numeric_date(&nbf, "nbf", noun)?;
            if now.saturating_add(self.leeway_secs) < not_before {
                return Err(format!("{noun} not valid before {}", rfc3339(not_before)));
            }
        }
        Ok(expires_at)
    }
}

impl SignedVerifier {
    /// Loads the keys of `config`.
    pub(super) fn new(config: &SignedConfig) -> Result<Self, TicketConfigError> {
        Ok(Self {
            jwt: JwtVerifier::new(
                "ticket",
                &config.issuer,
                &config.audience,
                config.leeway_secs,
                &config.keys,
            )?,
        })
    }

    /// The loaded keys.
    pub(super) fn key_info(&self) -> Vec<TicketKeyInfo> {
        self.jwt.key_info()
    }

    /// Verifies signature, issuer, audience and time window of `raw` at `now` (unix seconds),
    /// then the ticket's own claims.
    pub(super) fn verify_token(&self, raw: &str, now: u64) -> Result<VerifiedClaims, Rejection> {
        let ticket_id = |claims: &TicketClaims| -> Result<String, Rejection> {
            let id = claims
                .ticket
                .clone()
                .ok_or_else(|| malformed("claim 'ticket' (the change id) is missing"))?;
            check_id(&id).map_err(malformed)?;
            Ok(id)
        };
        let verified = match self.jwt.verify::<TicketClaims>(raw, now) {
            Ok(verified) => verified,
            Err(JwtRejection { claims, reason }) => {
                let id = match claims.as_ref().map(ticket_id) {
                    Some(Ok(id)) => Some(id),
                    Some(Err(rejection)) => return Err(rejection),
                    None => None,
                };
                return Err(Rejection { id, reason });
            }
        };
        let id = ticket_id(&verified.claims)?;
        let refuse = |reason: &str| Rejection {
            id: Some(id.clone()),
            reason: reason.to_owned(),
        };
        let hosts = verified.claims.hosts.clone().ok_or_else(|| {
            refuse("malformed ticket: claim 'hosts' is missing (an array of host moIds or names)")
        })?;
        let actions = verified.claims.actions.clone().ok_or_else(|| {
            refuse(
                "malformed ticket: claim 'actions' is missing (an array of vSphere method names)",
            )
        })?;
        Ok(VerifiedClaims {
            id,
            hosts,
            actions,
            expires_at: verified.expires_at,
            key_id: verified.key_id,
            alg: verified.alg,
        })
    }
}

impl VerifiedClaims {
    /// Whether `hosts` names the target's moId (exactly) or its host name (ignoring ASCII case
    /// and a trailing dot).
    pub(super) fn covers_target(&self, target: &TicketTarget) -> bool {
        let name = |s: &str| s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        self.hosts.iter().any(|host| {
            *host == target.mo_id
                || target.hosts.contains(host)
                || target
                    .host_name
                    .as_deref()
                    .is_some_and(|n| !host.is_empty() && name(host) == name(n))
        })
    }

    /// Whether `actions` names `action` exactly.
    pub(super) fn covers_action(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }
}
