//! Objects a session creates besides container views and filters: its own property collectors,
//! list views and event history collectors, with the methods that create, change and destroy them.

use vsphere_wire::fault::VimFault;

use super::args::Args;
use super::faults;
use super::inventory::{Inventory, is_a};
use super::sessions::Session;
use super::value::{MoRef, VimValue};

/// The shared property collector every session may use.
pub(crate) const ROOT_COLLECTOR: &str = "propertyCollector";
/// `latestPage` size of a new event history collector (vCenter's default).
const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest `latestPage` size accepted.
const MAX_PAGE_SIZE: usize = 1_000;

/// A property collector created with `CreatePropertyCollector`.
#[derive(Debug, Clone)]
pub(crate) struct CollectorRecord {
    /// Key of the owning session.
    pub(crate) session_key: String,
}

/// A list view: an explicit set of objects.
#[derive(Debug, Clone)]
pub(crate) struct ListViewRecord {
    /// Key of the owning session.
    pub(crate) session_key: String,
    /// The objects shown, in order.
    pub(crate) objects: Vec<MoRef>,
}

/// An event history collector.
#[derive(Debug, Clone)]
pub(crate) struct EventCollectorRecord {
    /// Key of the owning session.
    pub(crate) session_key: String,
    /// The entity whose events are collected (`None`: all).
    pub(crate) entity: Option<MoRef>,
    /// Number of events in `latestPage`.
    pub(crate) page_size: usize,
}

/// The outcome of a handled method: `Some(value)` or `None` for a void return.
pub(crate) type Returned = Option<VimValue>;

/// Resolves `refs` for `session`; returns the known objects and the references it could not find.
fn resolve(inv: &Inventory, session: &Session, refs: &[Args<'_>]) -> (Vec<MoRef>, Vec<MoRef>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for r in refs.iter().filter_map(Args::moref) {
        match inv
            .lookup(&r.value, Some(&session.key))
            .filter(|o| is_a(&o.mo_type, &r.mo_type))
        {
            Some(obj) if !found.contains(&obj) => found.push(obj),
            Some(_) => {}
            None => missing.push(r),
        }
    }
    (found, missing)
}

/// The references a list view could not resolve, as the method returns them.
fn unresolved(missing: Vec<MoRef>) -> Returned {
    (!missing.is_empty()).then(|| VimValue::morefs(missing))
}

/// Runs `method` on `obj` if it is one of this module's methods; `None` if it is not.
pub(crate) fn call(
    inv: &mut Inventory,
    session: &Session,
    obj: &MoRef,
    method: &str,
    args: Args<'_>,
) -> Option<Result<Returned, VimFault>> {
    let creates = matches!(
        (obj.mo_type.as_str(), method),
        ("PropertyCollector", "CreatePropertyCollector")
            | ("ViewManager", "CreateListView")
            | ("EventManager", "CreateCollectorForEvents")
    );
    if creates && !inv.has_room_for_session_object() {
        return Some(Err(faults::invalid_state()));
    }
    let key = session.key.clone();
    let result = match (obj.mo_type.as_str(), method) {
        ("PropertyCollector", "CreatePropertyCollector") => {
            let id = Inventory::session_object_id(&key);
            inv.collectors
                .insert(id.clone(), CollectorRecord { session_key: key });
            Ok(Some(VimValue::moref("PropertyCollector", id)))
        }
        ("PropertyCollector", "DestroyPropertyCollector") => {
            if obj.value == ROOT_COLLECTOR {
                return Some(Err(faults::invalid_argument("_this")));
            }
            inv.collectors.remove(&obj.value);
            inv.filters.retain(|_, f| f.collector != obj.value);
            inv.update_versions.retain(|(_, c), _| c != &obj.value);
            Ok(None)
        }
        ("ViewManager", "CreateListView") => {
            let (objects, _) = resolve(inv, session, &args.list("obj"));
            let id = Inventory::session_object_id(&key);
            inv.list_views.insert(
                id.clone(),
                ListViewRecord {
                    session_key: key,
                    objects,
                },
            );
            Ok(Some(VimValue::moref("ListView", id)))
        }
        ("ListView", "ResetListView") => {
            let (objects, missing) = resolve(inv, session, &args.list("obj"));
            if let Some(view) = inv.list_views.get_mut(&obj.value) {
                view.objects = objects;
            }
            Ok(unresolved(missing))
        }
        ("ListView", "ModifyListView") => {
            let (added, missing) = resolve(inv, session, &args.list("add"));
            let removed: Vec<MoRef> = args.list("remove").iter().filter_map(Args::moref).collect();
            if let Some(view) = inv.list_views.get_mut(&obj.value) {
                view.objects
                    .retain(|o| !removed.iter().any(|r| r.value == o.value));
                for a in added {
                    if !view.objects.contains(&a) {
                        view.objects.push(a);
                    }
                }
            }
            Ok(unresolved(missing))
        }
        ("ListView", "DestroyView") => {
            inv.list_views.remove(&obj.value);
            Ok(None)
        }
        ("EventManager", "CreateCollectorForEvents") => {
            let entity = match args
                .field("filter")
                .and_then(|f| f.field("entity"))
                .and_then(|e| e.moref_field("entity"))
            {
                Some(r) => match inv.lookup(&r.value, Some(&key)) {
                    Some(found) => Some(found),
                    None => return Some(Err(faults::not_found(&r))),
                },
                None => None,
            };
            let id = Inventory::session_object_id(&key);
            inv.event_collectors.insert(
                id.clone(),
                EventCollectorRecord {
                    session_key: key,
                    entity,
                    page_size: DEFAULT_PAGE_SIZE,
                },
            );
            Ok(Some(VimValue::moref("EventHistoryCollector", id)))
        }
        ("EventManager", "QueryEvents") => {
            let entity = args
                .field("filter")
                .and_then(|f| f.field("entity"))
                .and_then(|e| e.moref_field("entity"));
            let events = inv.events.latest(entity.as_ref(), MAX_PAGE_SIZE);
            Ok(Some(VimValue::Array("Event", events)))
        }
        ("EventHistoryCollector", "SetCollectorPageSize") => {
            let size = match args.int_field("maxCount") {
                Ok(Some(n)) => usize::try_from(n).ok().filter(|n| *n <= MAX_PAGE_SIZE),
                _ => None,
            };
            let Some(size) = size else {
                return Some(Err(faults::invalid_argument("maxCount")));
            };
            if let Some(c) = inv.event_collectors.get_mut(&obj.value) {
                c.page_size = size;
            }
            Ok(None)
        }
        ("EventHistoryCollector", "DestroyCollector") => {
            inv.event_collectors.remove(&obj.value);
            Ok(None)
        }
        _ => return None,
    };
    Some(result)
}
