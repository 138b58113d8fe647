//! Recent look-up outcomes by ticket id, each kept for its own lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::LookupError;
use super::record::ChangeRecord;

/// A look-up's outcome, shared between the cache and the verdicts built from it.
pub(crate) type Outcome = Arc<Result<ChangeRecord, LookupError>>;

/// Most ticket ids remembered; beyond it, expired entries are dropped and new ones not kept.
const MAX_ENTRIES: usize = 4096;

/// Look-up outcomes by ticket id.
#[derive(Debug, Default)]
pub(crate) struct LookupCache {
    entries: Mutex<HashMap<String, (Outcome, Instant)>>,
}

impl LookupCache {
    /// The outcome for `id` if it has not expired at `now`.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Outcome> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .filter(|(_, expires)| now < *expires)
            .map(|(outcome, _)| outcome.clone())
    }

    /// Keeps `outcome` for `id` until `now + ttl` (not at all for a zero `ttl`).
    pub(crate) fn put(&self, id: &str, outcome: Outcome, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(id) {
            entries.retain(|_, (_, expires)| now < *expires);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(id.to_owned(), (outcome, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_own_ttl() {
        let cache = LookupCache::default();
        let t0 = Instant::now();
        cache.put(
            "CHG1",
            Arc::new(Err(LookupError::NotFound)),
            Duration::from_secs(5),
            t0,
        );
        cache.put(
            "CHG2",
            Arc::new(Err(LookupError::NotFound)),
            Duration::from_secs(60),
            t0,
        );
        cache.put(
            "CHG3",
            Arc::new(Err(LookupError::NotFound)),
            Duration::ZERO,
            t0,
        );
        assert!(cache.get("CHG1", t0 + Duration::from_secs(4)).is_some());
        assert!(cache.get("CHG1", t0 + Duration::from_secs(5)).is_none());
        assert!(cache.get("CHG2", t0 + Duration::from_secs(59)).is_some());
        assert!(cache.get("CHG3", t0).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = LookupCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(
                &format!("CHG{i}"),
                Arc::new(Err(LookupError::NotFound)),
                Duration::from_secs(60),
                t0,
            );
        }
        assert!(cache.get(&format!("CHG{}", MAX_ENTRIES + 5), t0).is_none());
        let later = t0 + Duration::from_secs(61);
        cache.put(
            "CHGnew",
            Arc::new(Err(LookupError::NotFound)),
            Duration::from_secs(60),
            later,
        );
        assert!(cache.get("CHGnew", later).is_some());
    }
}
