//! Token → user cache, keyed by HMAC-SHA256 of the token under a per-process random key.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A keyed hash of a session token: safe to keep, log and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key as 32 hex digits (the first 16 bytes), for logs.
    pub fn short_hex(&self) -> String {
        hex::encode(&self.0[..16])
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.short_hex())
    }
}

struct Entry {
    user: Option<String>,
    expires: Instant,
}

/// Bounded, expiring map of session keys to users (`None` = vCenter said: not logged in).
pub struct SessionCache {
    /// HMAC-SHA256 keyed with a per-process random secret, cloned for each token.
    mac: Hmac<Sha256>,
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<SessionKey, Entry>>,
}

impl SessionCache {
    /// A cache whose entries live `ttl` (unknown tokens `negative_ttl`), holding at most `max_entries`.
    pub fn new(ttl: Duration, negative_ttl: Duration, max_entries: usize) -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
            ttl,
            negative_ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The keyed hash of `token` (HMAC-SHA256).
    pub fn key_for(&self, token: &str) -> SessionKey {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        SessionKey(mac.finalize().into_bytes().into())
    }

    /// `Some(user)` for a known session, `Some(None)` for a token vCenter does not know,
    /// `None` when the gateway has no fresh answer.
    pub fn get(&self, key: &SessionKey) -> Option<Option<String>> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(entry) if entry.expires > Instant::now() => Some(entry.user.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers the user of a session (`None`: not logged in).
    pub fn put(&self, key: SessionKey, user: Option<String>) {
        let ttl = if user.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.max_entries {
            entries.retain(|_, entry| entry.expires > now);
            if entries.len() >= self.max_entries {
                // Still full of live entries: forget everything rather than grow without bound.
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                user,
                expires: now + ttl,
            },
        );
    }

    /// Forgets a session (Logout, ImpersonateUser, CloneSession).
    pub fn forget(&self, key: &SessionKey) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_keyed_and_stable() {
        let a = SessionCache::new(Duration::from_secs(60), Duration::from_secs(5), 10);
        let b = SessionCache::new(Duration::from_secs(60), Duration::from_secs(5), 10);
        assert_eq!(a.key_for("tok"), a.key_for("tok"));
        assert_ne!(a.key_for("tok"), a.key_for("tok2"));
        assert_ne!(a.key_for("tok"), b.key_for("tok"));
        assert!(!format!("{:?}", a.key_for("secret-token")).contains("secret-token"));
    }

    #[test]
    fn entries_expire_and_are_forgotten() {
        let cache = SessionCache::new(Duration::from_secs(60), Duration::ZERO, 2);
        let key = cache.key_for("t1");
        cache.put(key, Some("VSPHERE.LOCAL\\Administrator".into()));
        assert_eq!(
            cache.get(&key),
            Some(Some("VSPHERE.LOCAL\\Administrator".into()))
        );
        cache.forget(&key);
        assert_eq!(cache.get(&key), None);
        let unknown = cache.key_for("t2");
        cache.put(unknown, None);
        assert_eq!(
            cache.get(&unknown),
            None,
            "zero negative TTL expires at once"
        );
    }

    #[test]
    fn size_is_bounded() {
        let cache = SessionCache::new(Duration::from_secs(60), Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.put(cache.key_for(&i.to_string()), Some(format!("u{i}")));
        }
        assert!(cache.lock().len() <= 3);
    }
}
