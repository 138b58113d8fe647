//! The PropertyCollector: filter specs, traversal, property retrieval and update sets.

use std::collections::{BTreeMap, HashMap, HashSet};

use vsphere_wire::fault::VimFault;

use super::args::Args;
use super::faults;
use super::inventory::{Inventory, is_a};
use super::sessions::Session;
use super::value::{MoRef, VimValue};

/// Deepest traversal followed from one starting object.
const MAX_TRAVERSAL_DEPTH: usize = 16;

/// One `PropertySpec`: which properties of which type.
#[derive(Debug, Clone)]
struct PropSpec {
    type_name: String,
    all: bool,
    paths: Vec<String>,
}

/// One `TraversalSpec`: from objects of a type, follow a reference property.
#[derive(Debug, Clone)]
struct TraversalSpec {
    type_name: String,
    path: String,
    skip: bool,
    select: Vec<Selection>,
}

/// A `SelectionSpec`: a traversal, or a reference to a named one.
#[derive(Debug, Clone)]
enum Selection {
    Named(String),
    Traversal(Option<String>, TraversalSpec),
}

/// One `ObjectSpec`: a starting object and where to go from it.
#[derive(Debug, Clone)]
struct ObjSpec {
    obj: MoRef,
    skip: bool,
    select: Vec<Selection>,
}

/// A `PropertyFilterSpec`.
#[derive(Debug, Clone)]
pub(crate) struct FilterSpec {
    props: Vec<PropSpec>,
    objs: Vec<ObjSpec>,
}

/// The set properties of one object, by property path.
type ObjectProps = Vec<(String, VimValue)>;

/// Properties of each object as last reported to a filter's owner.
type Snapshot = BTreeMap<MoRef, ObjectProps>;

/// A property filter created by a session.
#[derive(Debug, Clone)]
pub(crate) struct FilterRecord {
    /// Key of the owning session.
    pub(crate) session_key: String,
    /// moId of the property collector it belongs to.
    pub(crate) collector: String,
    /// The `partialUpdates` flag it was created with.
    pub(crate) partial_updates: bool,
    spec: FilterSpec,
    reported: Option<Snapshot>,
}

impl FilterRecord {
    /// A new filter of `collector` that has reported nothing yet.
    pub(crate) fn new(
        session_key: String,
        collector: String,
        spec: FilterSpec,
        partial_updates: bool,
    ) -> Self {
        Self {
            session_key,
            collector,
            partial_updates,
            spec,
            reported: None,
        }
    }
}

/// Parses a `PropertyFilterSpec` parameter.
pub(crate) fn parse_filter_spec(spec: Args<'_>) -> Result<FilterSpec, VimFault> {
    let mut props = Vec::new();
    for p in spec.list("propSet") {
        let type_name = p
            .str_field("type")
            .ok_or_else(|| faults::invalid_argument("propSet.type"))?;
        let all = p
            .bool_field("all")
            .map_err(|_| faults::invalid_argument("propSet.all"))?
            .unwrap_or(false);
        let paths = p.list("pathSet").iter().filter_map(Args::text).collect();
        props.push(PropSpec {
            type_name,
            all,
            paths,
        });
    }
    let mut objs = Vec::new();
    for o in spec.list("objectSet") {
        let obj = o
            .moref_field("obj")
            .ok_or_else(|| faults::invalid_argument("objectSet.obj"))?;
        let skip = o
            .bool_field("skip")
            .map_err(|_| faults::invalid_argument("objectSet.skip"))?
            .unwrap_or(false);
        let select = parse_selections(o)?;
        objs.push(ObjSpec { obj, skip, select });
    }
    Ok(FilterSpec { props, objs })
}

/// Parses the `selectSet` of an object or traversal spec.
fn parse_selections(parent: Args<'_>) -> Result<Vec<Selection>, VimFault> {
    let mut out = Vec::new();
    for s in parent.list("selectSet") {
        let name = s.str_field("name").filter(|n| !n.is_empty());
        match (s.str_field("type"), s.str_field("path")) {
            (Some(type_name), Some(path)) => {
                let skip = s
                    .bool_field("skip")
                    .map_err(|_| faults::invalid_argument("selectSet.skip"))?
                    .unwrap_or(false);
                let select = parse_selections(s)?;
                out.push(Selection::Traversal(
                    name,
                    TraversalSpec {
                        type_name,
                        path,
                        skip,
                        select,
                    },
                ));
            }
            _ => out.push(Selection::Named(
                name.ok_or_else(|| faults::invalid_argument("selectSet.name"))?,
            )),
        }
    }
    Ok(out)
}

/// Walks a spec to the objects it selects.
struct Walker<'a> {
    inv: &'a Inventory,
    session: Option<&'a Session>,
    named: HashMap<&'a str, &'a TraversalSpec>,
    visited: HashSet<(MoRef, usize)>,
    out: Vec<MoRef>,
    seen: HashSet<MoRef>,
}

impl<'a> Walker<'a> {
    /// Records the traversal specs that have a name, for `SelectionSpec` references.
    fn collect_names(&mut self, selections: &'a [Selection]) {
        for s in selections {
            if let Selection::Traversal(name, spec) = s {
                if let Some(name) = name {
                    self.named.entry(name.as_str()).or_insert(spec);
                }
                self.collect_names(&spec.select);
            }
        }
    }

    /// Adds an object to the selection once.
    fn add(&mut self, obj: &MoRef) {
        if self.seen.insert(obj.clone()) {
            self.out.push(obj.clone());
        }
    }

    /// Follows `selections` from `obj`.
    fn walk(&mut self, obj: &MoRef, selections: &'a [Selection], depth: usize) {
        if depth >= MAX_TRAVERSAL_DEPTH {
            return;
        }
        for s in selections {
            let spec: &'a TraversalSpec = match s {
                Selection::Traversal(_, spec) => spec,
                Selection::Named(name) => match self.named.get(name.as_str()) {
                    Some(spec) => spec,
                    None => continue,
                },
            };
            if !is_a(&obj.mo_type, &spec.type_name)
                || !self
                    .visited
                    .insert((obj.clone(), std::ptr::from_ref(spec) as usize))
            {
                continue;
            }
            let targets = match self.inv.read(obj, self.session, &spec.path) {
                Ok(Some(VimValue::MoRef(r))) => vec![r],
                Ok(Some(VimValue::Array(_, items))) => items
                    .into_iter()
                    .filter_map(|i| match i {
                        VimValue::MoRef(r) => Some(r),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for target in targets {
                if !spec.skip {
                    self.add(&target);
                }
                self.walk(&target, &spec.select, depth + 1);
            }
        }
    }
}

/// The objects `spec` selects; unknown starting objects are a fault unless `lenient`.
fn select_objects(
    inv: &Inventory,
    session: Option<&Session>,
    spec: &FilterSpec,
    lenient: bool,
) -> Result<Vec<MoRef>, VimFault> {
    let mut walker = Walker {
        inv,
        session,
        named: HashMap::new(),
        visited: HashSet::new(),
        out: Vec::new(),
        seen: HashSet::new(),
    };
    for o in &spec.objs {
        walker.collect_names(&o.select);
    }
    let session_key = session.map(|s| s.key.as_str());
    for o in &spec.objs {
        let found = inv
            .lookup(&o.obj.value, session_key)
            .filter(|found| is_a(&found.mo_type, &o.obj.mo_type));
        let Some(obj) = found else {
            if lenient {
                continue;
            }
            return Err(faults::not_found(&o.obj));
        };
        if !o.skip {
            walker.add(&obj);
        }
        walker.walk(&obj, &o.select, 0);
    }
    Ok(walker.out)
}

/// The selected objects with their requested, set properties.
fn collect(
    inv: &Inventory,
    session: Option<&Session>,
    spec: &FilterSpec,
    lenient: bool,
) -> Result<Vec<(MoRef, ObjectProps)>, VimFault> {
    let mut out = Vec::new();
    for obj in select_objects(inv, session, spec, lenient)? {
        let specs: Vec<&PropSpec> = spec
            .props
            .iter()
            .filter(|p| is_a(&obj.mo_type, &p.type_name))
            .collect();
        if specs.is_empty() {
            continue;
        }
        let mut paths: Vec<String> = Vec::new();
        if specs.iter().any(|p| p.all) {
            paths.extend(
                inv.properties(&obj, session)
                    .into_iter()
                    .map(|(name, _)| name.to_string()),
            );
        }
        for p in &specs {
            for path in &p.paths {
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
        }
        let mut props = Vec::new();
        for path in paths {
            match inv.read(&obj, session, &path) {
                Ok(Some(value)) => props.push((path, value)),
                Ok(None) => {}
                Err(_) if lenient => {}
                Err(fault) => return Err(fault),
            }
        }
        out.push((obj, props));
    }
    Ok(out)
}

/// Checks a spec at filter creation: its objects exist and its properties are valid.
pub(crate) fn validate(
    inv: &Inventory,
    session: Option<&Session>,
    spec: &FilterSpec,
) -> Result<(), VimFault> {
    collect(inv, session, spec, false).map(|_| ())
}

/// An `ObjectContent` for one object.
fn object_content(obj: MoRef, props: ObjectProps) -> VimValue {
    let prop_set = props
        .into_iter()
        .map(|(name, value)| {
            VimValue::Data(
                "DynamicProperty",
                vec![("name", VimValue::Str(name)), ("val", value.any())],
            )
        })
        .collect();
    VimValue::Data(
        "ObjectContent",
        vec![
            ("obj", VimValue::MoRef(obj)),
            ("propSet", VimValue::Array("DynamicProperty", prop_set)),
        ],
    )
}

/// `RetrieveProperties` / `RetrievePropertiesEx`: every `specSet` entry's objects, as `ObjectContent`s.
pub(crate) fn retrieve(
    inv: &Inventory,
    session: Option<&Session>,
    args: Args<'_>,
) -> Result<Vec<VimValue>, VimFault> {
    let mut out = Vec::new();
    for spec in args.list("specSet") {
        let spec = parse_filter_spec(spec)?;
        for (obj, props) in collect(inv, session, &spec, false)? {
            out.push(object_content(obj, props));
        }
    }
    Ok(out)
}

/// A `RetrieveResult` holding `objects`.
pub(crate) fn retrieve_result(objects: Vec<VimValue>) -> VimValue {
    VimValue::Data(
        "RetrieveResult",
        vec![("objects", VimValue::Array("ObjectContent", objects))],
    )
}

/// A `PropertyChange` assigning `value` (or unsetting) to `name`.
fn change(name: &str, value: Option<&VimValue>) -> VimValue {
    let mut fields = vec![
        ("name", VimValue::str(name)),
        ("op", VimValue::enumv("PropertyChangeOp", "assign")),
    ];
    if let Some(v) = value {
        fields.push(("val", v.clone().any()));
    }
    VimValue::Data("PropertyChange", fields)
}

/// An `ObjectUpdate` of `kind` for `obj`.
fn object_update(kind: &str, obj: &MoRef, changes: Vec<VimValue>) -> VimValue {
    VimValue::Data(
        "ObjectUpdate",
        vec![
            ("kind", VimValue::enumv("ObjectUpdateKind", kind)),
            ("obj", VimValue::MoRef(obj.clone())),
            ("changeSet", VimValue::Array("PropertyChange", changes)),
        ],
    )
}

/// The object updates between what a filter reported before and what holds now.
fn diff(previous: Option<&Snapshot>, current: &Snapshot) -> Vec<VimValue> {
    let mut updates = Vec::new();
    for (obj, props) in current {
        match previous.and_then(|p| p.get(obj)) {
            None => {
                let changes = props.iter().map(|(n, v)| change(n, Some(v))).collect();
                updates.push(object_update("enter", obj, changes));
            }
            Some(before) => {
                let mut changes: Vec<VimValue> = props
                    .iter()
                    .filter(|(n, v)| !before.iter().any(|(bn, bv)| bn == n && bv == v))
                    .map(|(n, v)| change(n, Some(v)))
                    .collect();
                changes.extend(
                    before
                        .iter()
                        .filter(|(bn, _)| !props.iter().any(|(n, _)| n == bn))
                        .map(|(bn, _)| change(bn, None)),
                );
                if !changes.is_empty() {
                    updates.push(object_update("modify", obj, changes));
                }
            }
        }
    }
    if let Some(previous) = previous {
        for obj in previous.keys().filter(|o| !current.contains_key(*o)) {
            updates.push(object_update("leave", obj, Vec::new()));
        }
    }
    updates
}

/// Computes the pending updates of `collector`'s filters for the session; `None` when nothing
/// changed since last time.
///
/// A missing or empty `since` version starts over: every filter reports all its objects.
pub(crate) fn check_updates(
    inv: &mut Inventory,
    session: &Session,
    collector: &str,
    since: Option<&str>,
) -> Option<VimValue> {
    let restart = since.is_none_or(str::is_empty);
    let ids: Vec<String> = inv
        .filters
        .iter()
        .filter(|(_, f)| f.session_key == session.key && f.collector == collector)
        .map(|(id, _)| id.clone())
        .collect();
    let mut filter_updates = Vec::new();
    for id in ids {
        let Some(filter) = inv.filters.get(&id) else {
            continue;
        };
        let current: Snapshot = collect(inv, Some(session), &filter.spec, true)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let previous = if restart {
            None
        } else {
            filter.reported.as_ref()
        };
        let updates = diff(previous, &current);
        if let Some(filter) = inv.filters.get_mut(&id) {
            filter.reported = Some(current);
        }
        if !updates.is_empty() {
            filter_updates.push(VimValue::Data(
                "PropertyFilterUpdate",
                vec![
                    ("filter", VimValue::moref("PropertyFilter", id)),
                    ("objectSet", VimValue::Array("ObjectUpdate", updates)),
                ],
            ));
        }
    }
    if filter_updates.is_empty() {
        return None;
    }
    let version = inv
        .update_versions
        .entry((session.key.clone(), collector.to_string()))
        .or_insert(0);
    *version += 1;
    Some(VimValue::Data(
        "UpdateSet",
        vec![
            ("version", VimValue::Str(version.to_string())),
            (
                "filterSet",
                VimValue::Array("PropertyFilterUpdate", filter_updates),
            ),
            ("truncated", VimValue::Bool(false)),
        ],
    ))
}

/// An `UpdateSet` with no changes at the current version of the session's `collector`.
pub(crate) fn empty_update_set(inv: &Inventory, session_key: &str, collector: &str) -> VimValue {
    let version = inv
        .update_versions
        .get(&(session_key.to_string(), collector.to_string()))
        .copied()
        .unwrap_or(0);
    VimValue::Data(
        "UpdateSet",
        vec![
            ("version", VimValue::Str(version.to_string())),
            ("truncated", VimValue::Bool(false)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traversal_through_a_container_view_reaches_hosts() {
        let mut inv = Inventory::default();
        inv.views.insert(
            "v1".into(),
            super::super::inventory::ViewRecord {
                session_key: "k".into(),
                container: MoRef::new("Folder", "group-d1"),
                types: vec!["HostSystem".into()],
                recursive: true,
            },
        );
        let session = Session::for_tests("k");
        let args = json!({"specSet": [{
            "propSet": [{"type": "HostSystem", "pathSet": ["name", "runtime.inMaintenanceMode"]}],
            "objectSet": [{"obj": {"type": "ContainerView", "value": "v1"}, "skip": true,
                "selectSet": [{"_typeName": "TraversalSpec", "name": "t", "type": "ContainerView", "path": "view", "skip": false,
                    "selectSet": [{"name": "t"}]}]}]
        }]});
        let out = retrieve(&inv, Some(&session), Args::Json(&args)).expect("retrieve");
        assert_eq!(out.len(), 3);
        let first = out[0].to_json();
        assert_eq!(first["obj"]["value"], "host-21");
        assert_eq!(
            first["propSet"][0]["val"],
            json!({"_typeName": "string", "_value": "esx-21.example.test"})
        );
        assert_eq!(
            first["propSet"][1]["val"],
            json!({"_typeName": "boolean", "_value": false})
        );
    }

    #[test]
    fn updates_report_enter_then_modify_then_nothing() {
        let mut inv = Inventory::default();
        let session = Session::for_tests("k");
        let args = json!({"propSet": [{"type": "HostSystem", "pathSet": ["runtime.inMaintenanceMode"]}],
            "objectSet": [{"obj": {"type": "HostSystem", "value": "host-21"}}]});
        let spec = parse_filter_spec(Args::Json(&args)).expect("spec");
        inv.filters.insert(
            "f1".into(),
            FilterRecord::new("k".into(), "propertyCollector".into(), spec, false),
        );
        let first = check_updates(&mut inv, &session, "propertyCollector", None)
            .expect("initial update")
            .to_json();
        assert_eq!(first["version"], "1");
        assert_eq!(first["filterSet"][0]["objectSet"][0]["kind"], "enter");
        assert!(check_updates(&mut inv, &session, "propertyCollector", Some("1")).is_none());
        assert!(
            check_updates(&mut inv, &session, "other", None).is_none(),
            "another collector's filters report nothing here"
        );
        if let Some(h) = inv.host_mut("host-21") {
            h.in_maintenance = true;
        }
        let second = check_updates(&mut inv, &session, "propertyCollector", Some("1"))
            .expect("modify")
            .to_json();
        assert_eq!(second["filterSet"][0]["objectSet"][0]["kind"], "modify");
        assert_eq!(
            second["filterSet"][0]["objectSet"][0]["changeSet"][0]["val"]["_value"],
            true
        );
    }
}
