//! The policy set in force, swapped atomically on reload; a bad reload keeps the last good set.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use arc_swap::ArcSwap;

use super::engine::PolicySet;
use super::error::LoadErrors;
use super::load::policy_file_names;
use crate::vsphere::guarded::GuardedMethods;

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

/// A policy set and the guarded method set it implies: one value, swapped as one, so a request
/// that takes it once is classified and decided under the same policies.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// The policies.
    pub policies: Arc<PolicySet>,
    /// The methods classified as guarded: the built-in ones plus every action the schema declares.
    pub guarded: Arc<GuardedMethods>,
}

impl PolicySnapshot {
    /// The snapshot of `policies`.
    pub fn new(policies: PolicySet) -> Self {
        let guarded = guarded_methods(&policies);
        Self {
            policies: Arc::new(policies),
            guarded: Arc::new(guarded),
        }
    }
}

/// The guarded methods for `set`: the built-in ones plus every action its schema declares.
pub fn guarded_methods(set: &PolicySet) -> GuardedMethods {
    let mut methods = GuardedMethods::new();
    for action in set.guarded_actions() {
        if let Err(err) = methods.add(&action) {
            tracing::warn!(%action, error = %err, "schema action cannot be guarded by name");
        }
    }
    methods
}

/// Holds the current policy snapshot; taking it is cheap enough for every request.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<PolicySnapshot>,
    dir: PathBuf,
    /// Serialises reloads so that old/new hashes reported are consistent.
    reload_lock: Mutex<()>,
}

impl PolicyStore {
    /// A store serving `initial`, reloading from `dir`.
    pub fn new(initial: PolicySet, dir: PathBuf) -> Self {
        Self {
            current: ArcSwap::from_pointee(PolicySnapshot::new(initial)),
            dir,
            reload_lock: Mutex::new(()),
        }
    }

    /// The directory reloads read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot in force (an `Arc`; a request keeps using it even if a reload swaps).
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// The policy set in force.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load().policies.clone()
    }

    /// Re-loads the directory; on success swaps in the new set (if its hash differs) and says
    /// so; on failure keeps the old set and returns the errors.
    pub fn reload(&self) -> Result<ReloadOutcome, LoadErrors> {
        let _serial = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = PolicySet::load(&self.dir)?;
        let old = self.current.load();
        if old.policies.hash() == new.hash() {
            return Ok(ReloadOutcome::Unchanged);
        }
        let old_hash = old.policies.hash().to_string();
        let new_hash = new.hash().to_string();
        self.current.store(Arc::new(PolicySnapshot::new(new)));
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
