//! Redaction helpers: keyed hashes for secrets, header filtering.

use std::fmt;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::AuditError;
use super::chain::hex;
use super::record::{KeyedHash, TicketKind, TicketRef};

/// Shortest HMAC key accepted, in bytes.
pub const MIN_HMAC_KEY_BYTES: usize = 16;

/// Hex digits kept of the HMAC-SHA256 (128 bits).
pub const KEYED_HASH_HEX_CHARS: usize = 32;

/// Headers that carry credentials or session state, dropped by default.
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "vmware-api-session-id",
    "vmware-session-id",
    "x-change-ticket",
];

/// Computes keyed hashes (HMAC-SHA256, first 32 hex digits) of secrets.
#[derive(Clone)]
pub struct Redactor {
    mac: Hmac<Sha256>,
}

impl Redactor {
    /// Builds a redactor; the key must be at least [`MIN_HMAC_KEY_BYTES`] long.
    pub fn new(key: &[u8]) -> Result<Redactor, AuditError> {
        if key.len() < MIN_HMAC_KEY_BYTES {
            return Err(AuditError::Config(format!(
                "hmac_key is {} bytes; at least {MIN_HMAC_KEY_BYTES} are required so that \
                 session and ticket hashes cannot be recomputed from guesses",
                key.len()
            )));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| AuditError::Config(format!("hmac_key: {e}")))?;
        Ok(Redactor { mac })
    }

    /// The keyed hash of a secret, as lowercase hex.
    pub fn hex(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        hex(digest.get(..KEYED_HASH_HEX_CHARS / 2).unwrap_or(&digest))
    }

    /// The keyed hash of a secret, typed for record fields.
    pub fn hash(&self, value: &[u8]) -> KeyedHash {
        KeyedHash::from_hex(self.hex(value))
    }

    /// A ticket reference: the id in clear, the raw token only as a keyed hash.
    pub fn ticket(&self, id: &str, kind: TicketKind, raw_token: &[u8]) -> TicketRef {
        TicketRef {
            id: id.to_owned(),
            kind,
            hash: Some(self.hash(raw_token)),
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor { key: <redacted> }")
    }
}

/// A copy of `headers` without the named ones (case-insensitive), e.g. for debug logs.
pub fn redact_headers<S: AsRef<str>>(headers: &HeaderMap, drop: &[S]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !drop
            .iter()
            .any(|d| d.as_ref().eq_ignore_ascii_case(name.as_str()))
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_truncated() {
        let a = Redactor::new(b"0123456789abcdef").unwrap();
        let b = Redactor::new(b"0123456789abcdeF").unwrap();
        let token = b"vmware-api-session-id-value";
        assert_eq!(a.hex(token), a.hex(token));
        assert_ne!(a.hex(token), b.hex(token));
        assert_eq!(a.hex(token).len(), KEYED_HASH_HEX_CHARS);
        assert!(!a.hex(token).contains("session"));
    }

    #[test]
    fn short_keys_are_refused() {
        let err = Redactor::new(b"short").unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let r = Redactor::new(b"super-secret-key-material").unwrap();
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn headers_are_dropped_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert("Authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        h.insert("vmware-api-session-id", "abc".parse().unwrap());
        h.append("cookie", "vmware_soap_session=x".parse().unwrap());
        h.insert("user-agent", "pyvmomi".parse().unwrap());
        let out = redact_headers(&h, DEFAULT_REDACTED_HEADERS);
        assert_eq!(out.len(), 1);
        assert_eq!(out["user-agent"], "pyvmomi");
        let out = redact_headers(&h, &["USER-AGENT"]);
        assert_eq!(out.len(), 3);
    }
}
