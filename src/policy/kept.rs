//! A small map of values a loaded policy set keeps between decisions (entity stores of unknown
//! principals, `ip` values of client addresses), bounded to `N` entries: when full, the least
//! recently used one makes room.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Values kept by key, at most `N` of them.
#[derive(Debug)]
pub(crate) struct Kept<K, V, const N: usize> {
    inner: Mutex<Entries<K, V>>,
}

/// The kept values, each with the tick of its last use.
#[derive(Debug)]
struct Entries<K, V> {
    values: HashMap<K, (V, u64)>,
    tick: u64,
}

impl<K, V, const N: usize> Default for Kept<K, V, N> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Entries {
                values: HashMap::new(),
                tick: 0,
            }),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone, const N: usize> Kept<K, V, N> {
    /// The value kept for `key`, or the one `build` makes (then kept). `build` runs outside the
    /// lock, so a slow one does not hold up other decisions; a failed one keeps nothing.
    pub(crate) fn get_or_try_insert<Q, E>(
        &self,
        key: &Q,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        {
            let mut entries = self.lock();
            entries.tick += 1;
            let tick = entries.tick;
            if let Some((value, used)) = entries.values.get_mut(key) {
                *used = tick;
                return Ok(value.clone());
            }
        }
        let value = build()?;
        let mut entries = self.lock();
        if entries.values.len() >= N
            && let Some(oldest) = entries
                .values
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
        {
            entries.values.remove::<K>(&oldest);
        }
        let tick = entries.tick;
        entries.values.insert(key.to_owned(), (value.clone(), tick));
        Ok(value)
    }

    /// The value kept for `key`, or the one `build` makes (then kept), for a `build` that
    /// cannot fail.
    pub(crate) fn get_or_insert<Q>(&self, key: &Q, build: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Ok(value) = self.get_or_try_insert(key, || Ok::<_, Infallible>(build()));
        value
    }

    /// How many values are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().values.len()
    }

    fn lock(&self) -> MutexGuard<'_, Entries<K, V>> {
        // The map is valid after any panic (an insert or a remove either happened or not).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
