//! The policy set in force, swapped atomically on reload; a bad reload keeps the last good set.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::UNIX_EPOCH;

use super::engine::PolicySet;
use super::error::LoadErrors;
use super::load::policy_file_names;

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A different set is now in force.
    Changed {
        /// Hash of the set that was replaced.
        old_hash: String,
        /// Hash of the set now in force.
        new_hash: String,
    },
    /// The files hash the same as the set in force; nothing was swapped.
    Unchanged,
}

/// Holds the current policy set; `current()` is cheap enough for every request.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<PolicySet>>,
    dir: PathBuf,
    /// Serialises reloads so that old/new hashes reported are consistent.
    reload_lock: Mutex<()>,
}

impl PolicyStore {
    /// A store serving `initial`, reloading from `dir`.
    pub fn new(initial: PolicySet, dir: PathBuf) -> Self {
        Self {
            current: RwLock::new(Arc::new(initial)),
            dir,
            reload_lock: Mutex::new(()),
        }
    }

    /// The directory reloads read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in force (an `Arc` clone; decisions keep using it even if a reload swaps).
    pub fn current(&self) -> Arc<PolicySet> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Re-loads the directory; on success swaps in the new set (if its hash differs) and says
    /// so; on failure keeps the old set and returns the errors.
    pub fn reload(&self) -> Result<ReloadOutcome, LoadErrors> {
        let _serial = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = PolicySet::load(&self.dir)?;
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if guard.hash() == new.hash() {
            return Ok(ReloadOutcome::Unchanged);
        }
        let old_hash = guard.hash().to_string();
        let new_hash = new.hash().to_string();
        *guard = Arc::new(new);
        Ok(ReloadOutcome::Changed { old_hash, new_hash })
    }

    /// A cheap fingerprint of the directory's policy files (names, modification times, sizes),
    /// for polling: when it changes, call `reload`.
    pub fn dir_fingerprint(&self) -> u64 {
        dir_fingerprint(&self.dir)
    }
}

/// Fingerprint of the policy files in `dir`; an unreadable directory or file hashes its error.
pub(crate) fn dir_fingerprint(dir: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    match policy_file_names(dir) {
        Ok(names) => {
            for name in names {
                name.hash(&mut hasher);
                match fs::metadata(dir.join(&name)) {
                    Ok(meta) => {
                        meta.len().hash(&mut hasher);
                        let modified = meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map(|d| d.as_nanos());
                        modified.hash(&mut hasher);
                    }
                    Err(e) => e.kind().hash(&mut hasher),
                }
            }
        }
        Err(e) => e.message.hash(&mut hasher),
    }
    hasher.finish()
}
