//! The request shapes Cedar's schema check has passed. The check (the principal's and the
//! resource's types for the action, and the context's type) was a third of a decision's time
//! (BENCHMARKS.md), and its answer depends on nothing but the action, the two entity types
//! (and their ids, for an enumerated type) and the context's shape: which fields, and whether
//! each is a boolean, a long, a string, an `ip`, a set or a record, recursively. A shape that
//! passed once passes again, so it is not checked twice; the context itself is still built
//! from every call's values.

use std::collections::HashSet;
use std::sync::{PoisonError, RwLock};

use cedar_policy::SchemaFragment;

use super::NAMESPACE;

/// How many shapes [`CheckedShapes`] keeps. Beyond it, requests of new shapes are checked on
/// every call: only slower.
const KEPT_SHAPES: usize = 4096;

/// The keys of requests that passed the schema check.
#[derive(Debug, Default)]
pub(crate) struct CheckedShapes {
    keys: RwLock<HashSet<Box<[u8]>>>,
}

impl CheckedShapes {
    /// True when a request with this key passed the check before.
    pub(crate) fn contains(&self, key: &ShapeKey) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.contains(key.bytes.as_slice())
    }

    /// Keeps `key` as passed (unless the set is full).
    pub(crate) fn insert(&self, key: ShapeKey) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() < KEPT_SHAPES {
            keys.insert(key.bytes.into_boxed_slice());
        }
    }

    /// Forgets every key.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many keys are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Bytes reserved for a key: the largest contexts (a maintenance spec) take a few hundred, and
/// a key that outgrows its buffer is copied each time it doubles.
const SHAPE_KEY_CAPACITY: usize = 512;

/// What the schema check of one request depends on, encoded without ambiguity: each name is
/// length-prefixed and each value starts with a tag byte.
#[derive(Debug)]
pub(crate) struct ShapeKey {
    bytes: Vec<u8>,
}

impl ShapeKey {
    /// A key for `action` and the two entities: `(type, Some(id))` for an enumerated type,
    /// whose ids the check reads, `(type, None)` otherwise. The context's shape follows.
    pub(crate) fn new(
        action: &str,
        principal: (&str, Option<&str>),
        resource: (&str, Option<&str>),
    ) -> Self {
        let mut key = Self {
            bytes: Vec::with_capacity(SHAPE_KEY_CAPACITY),
        };
        key.name(action);
        for (ty, id) in [principal, resource] {
            key.name(ty);
            match id {
                Some(id) => {
                    key.bytes.push(b'=');
                    key.name(id);
                }
                None => key.bytes.push(b'*'),
            }
        }
        key
    }

    /// A boolean value.
    pub(crate) fn boolean(&mut self) {
        self.bytes.push(b'b');
    }

    /// A long value.
    pub(crate) fn long(&mut self) {
        self.bytes.push(b'l');
    }

    /// A string value.
    pub(crate) fn string(&mut self) {
        self.bytes.push(b's');
    }

    /// An `ip` extension value.
    pub(crate) fn ip(&mut self) {
        self.bytes.push(b'i');
    }

    /// A set follows: its elements, then [`Self::end`].
    pub(crate) fn set(&mut self) {
        self.bytes.push(b'[');
    }

    /// A record follows: [`Self::field`] and a value for each field, then [`Self::end`].
    pub(crate) fn record(&mut self) {
        self.bytes.push(b'{');
    }

    /// A record's field named `name`; its value follows.
    pub(crate) fn field(&mut self, name: &str) {
        self.bytes.push(b'.');
        self.name(name);
    }

    /// The end of a set or a record.
    pub(crate) fn end(&mut self) {
        self.bytes.push(b'}');
    }

    fn name(&mut self, name: &str) {
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
    }
}

/// The enumerated entity types of the gateway's namespace (by basename) in the schema
/// `text`; `None` when the schema cannot be read as a fragment, so that every type counts as
/// enumerated.
pub(crate) fn enumerated_types(text: &str) -> Option<HashSet<String>> {
    let (fragment, _) = SchemaFragment::from_cedarschema_str(text).ok()?;
    let json = fragment.to_json_value().ok()?;
    let types = json.get(NAMESPACE)?.get("entityTypes")?.as_object()?;
    Some(
        types
            .iter()
            .filter(|(_, declaration)| declaration.get("enum").is_some())
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_where_the_check_could_differ() {
        let key = |action: &str, resource: (&str, Option<&str>), fill: fn(&mut ShapeKey)| {
            let mut key = ShapeKey::new(action, ("User", None), resource);
            fill(&mut key);
            key.bytes
        };
        let host = ("HostSystem", None);
        let hour_long = |k: &mut ShapeKey| {
            k.record();
            k.field("hour_utc");
            k.long();
            k.end();
        };
        let hour_string = |k: &mut ShapeKey| {
            k.record();
            k.field("hour_utc");
            k.string();
            k.end();
        };
        let base = key("RebootHost_Task", host, hour_long);
        assert_eq!(base, key("RebootHost_Task", host, hour_long));
        assert_ne!(base, key("RebootHost_Task", host, hour_string));
        assert_ne!(base, key("ShutdownHost_Task", host, hour_long));
        assert_ne!(base, key("RebootHost_Task", ("Cluster", None), hour_long));
        assert_ne!(
            key("RebootHost_Task", ("Color", Some("Red")), hour_long),
            key("RebootHost_Task", ("Color", Some("Blue")), hour_long)
        );
        // A field name cannot pass for the shape that follows it.
        let nested = |k: &mut ShapeKey| {
            k.record();
            k.field("a");
            k.record();
            k.field("b");
            k.long();
            k.end();
            k.end();
        };
        let flat = |k: &mut ShapeKey| {
            k.record();
            k.field("a");
            k.long();
            k.field("b");
            k.long();
            k.end();
        };
        assert_ne!(key("A", host, nested), key("A", host, flat));
    }

    #[test]
    fn a_full_set_keeps_what_it_has() {
        let shapes = CheckedShapes::default();
        for i in 0..KEPT_SHAPES + 10 {
            shapes.insert(ShapeKey::new(
                &i.to_string(),
                ("User", None),
                ("HostSystem", None),
            ));
        }
        assert_eq!(shapes.len(), KEPT_SHAPES);
        assert!(shapes.contains(&ShapeKey::new("0", ("User", None), ("HostSystem", None))));
        assert!(!shapes.contains(&ShapeKey::new(
            &(KEPT_SHAPES + 1).to_string(),
            ("User", None),
            ("HostSystem", None)
        )));
    }

    #[test]
    fn enumerated_types_are_found_in_the_schema() {
        let schema = r#"
            namespace VSphere {
                entity User;
                entity Color enum ["Red", "Blue"];
                entity HostSystem;
            }
        "#;
        let found = enumerated_types(schema).expect("schema reads");
        assert_eq!(found, HashSet::from(["Color".to_string()]));
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/schema.cedarschema"),
        )
        .expect("shipped schema");
        assert_eq!(enumerated_types(&shipped), Some(HashSet::new()));
        assert_eq!(enumerated_types("not a schema {"), None);
    }
}
