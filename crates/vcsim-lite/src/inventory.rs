//! The simulated inventory: its objects, their state and their properties.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use uuid::Uuid;
use vsphere_wire::fault::VimFault;

use super::entities::{self, DATASTORE, DATASTORE_BROWSER, DATASTORE_NAME, RESOURCE_POOL, VmState};
use super::events::{EventEntity, EventLog, NewEvent, event_description};
use super::faults;
use super::property_collector::FilterRecord;
use super::session_objects::{CollectorRecord, EventCollectorRecord, ListViewRecord};
use super::sessions::{Session, SessionTable};
use super::tasks::{NewTask, TaskEffect, TaskTable};
use super::value::{MoRef, VimValue, now_rfc3339};

/// API version the simulator reports (as vcsim does in the recorded session).
pub(crate) const API_VERSION: &str = "8.0.3.0";
/// Most container views and property filters kept across all sessions.
pub(crate) const MAX_SESSION_OBJECTS: usize = 20_000;
/// The lockdown modes `ChangeLockdownMode` accepts.
pub(crate) const LOCKDOWN_MODES: [&str; 3] =
    ["lockdownDisabled", "lockdownNormal", "lockdownStrict"];

/// The root folder.
const ROOT_FOLDER: &str = "group-d1";
/// The only datacenter.
const DATACENTER: &str = "datacenter-1";
/// The datacenter's host folder.
const HOST_FOLDER: &str = "group-h4";
/// The only cluster.
const CLUSTER: &str = "domain-c7";
/// The datacenter's VM folder.
const VM_FOLDER: &str = "group-v3";
/// The datacenter's datastore folder.
const DATASTORE_FOLDER: &str = "group-s5";

/// State of one simulated ESXi host.
#[derive(Debug, Clone)]
pub(crate) struct HostState {
    /// moId, e.g. `host-21`.
    pub(crate) id: String,
    /// Host name, e.g. `esx-21.example.test`.
    pub(crate) name: String,
    /// moId of its HostAccessManager, e.g. `ham-21`.
    pub(crate) ham_id: String,
    /// Whether the host is in maintenance mode.
    pub(crate) in_maintenance: bool,
    /// Current `HostLockdownMode` value.
    pub(crate) lockdown_mode: String,
}

/// A container view created by a session.
#[derive(Debug, Clone)]
pub(crate) struct ViewRecord {
    /// Key of the owning session.
    pub(crate) session_key: String,
    /// The container the view looks into.
    pub(crate) container: MoRef,
    /// Types of objects shown (empty: all).
    pub(crate) types: Vec<String>,
    /// Whether the view looks below direct children.
    pub(crate) recursive: bool,
}

/// Every simulated object and its state.
#[derive(Debug)]
pub(crate) struct Inventory {
    /// The hosts of the cluster.
    pub(crate) hosts: Vec<HostState>,
    /// The virtual machines.
    pub(crate) vms: Vec<VmState>,
    /// Running and finished tasks.
    pub(crate) tasks: TaskTable,
    /// The event log.
    pub(crate) events: EventLog,
    /// Container views by moId.
    pub(crate) views: BTreeMap<String, ViewRecord>,
    /// List views by moId.
    pub(crate) list_views: BTreeMap<String, ListViewRecord>,
    /// Session-created property collectors by moId.
    pub(crate) collectors: BTreeMap<String, CollectorRecord>,
    /// Event history collectors by moId.
    pub(crate) event_collectors: BTreeMap<String, EventCollectorRecord>,
    /// Property filters by moId.
    pub(crate) filters: BTreeMap<String, FilterRecord>,
    /// Logged-in sessions.
    pub(crate) sessions: SessionTable,
    /// Bytes uploaded to the datastore (for its free space).
    pub(crate) datastore_used: u64,
    /// Scheduled tasks and DRS recommendations.
    pub(crate) stored: super::scheduled_tasks::StoredCalls,
    /// Lifecycle Manager remediations run over the Automation REST API.
    pub(crate) remediations: Vec<super::lifecycle::Remediation>,
    /// Update version per (session key, collector moId), for `WaitForUpdates`.
    pub(crate) update_versions: HashMap<(String, String), u64>,
    boot_time: String,
}

impl Default for Inventory {
    fn default() -> Self {
        let hosts = [21, 22, 23]
            .into_iter()
            .map(|n| HostState {
                id: format!("host-{n}"),
                name: format!("esx-{n}.example.test"),
                ham_id: format!("ham-{n}"),
                in_maintenance: false,
                lockdown_mode: "lockdownDisabled".into(),
            })
            .collect();
        Self {
            hosts,
            sessions: SessionTable::new(Vec::new()),
            datastore_used: 0,
            vms: entities::initial_vms(),
            tasks: TaskTable::new(Duration::ZERO),
            events: EventLog::default(),
            views: BTreeMap::new(),
            list_views: BTreeMap::new(),
            collectors: BTreeMap::new(),
            event_collectors: BTreeMap::new(),
            filters: BTreeMap::new(),
            update_versions: HashMap::new(),
            remediations: Vec::new(),
            stored: Default::default(),
            boot_time: now_rfc3339(),
        }
    }
}

/// Whether an object of type `actual` is also a `wanted` (the vim type hierarchy, in part).
pub(crate) fn is_a(actual: &str, wanted: &str) -> bool {
    if actual == wanted || wanted == "ManagedObject" {
        return true;
    }
    let entity = matches!(
        actual,
        "Folder"
            | "Datacenter"
            | "ClusterComputeResource"
            | "ComputeResource"
            | "HostSystem"
            | "VirtualMachine"
            | "Datastore"
            | "ResourcePool"
    );
    match wanted {
        "ManagedEntity" => entity,
        "ExtensibleManagedObject" => entity || actual == "Task",
        "ComputeResource" => actual == "ClusterComputeResource",
        "ManagedObjectView" | "View" => matches!(actual, "ContainerView" | "ListView"),
        "HistoryCollector" => actual == "EventHistoryCollector",
        _ => false,
    }
}

impl Inventory {
    /// The host `id`.
    pub(crate) fn host(&self, id: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// The host `id`, for changing it.
    pub(crate) fn host_mut(&mut self, id: &str) -> Option<&mut HostState> {
        self.hosts.iter_mut().find(|h| h.id == id)
    }

    /// The host whose HostAccessManager is `ham_id`, for changing it.
    pub(crate) fn host_by_ham_mut(&mut self, ham_id: &str) -> Option<&mut HostState> {
        self.hosts.iter_mut().find(|h| h.ham_id == ham_id)
    }

    /// The host whose HostAccessManager is `ham_id`.
    pub(crate) fn host_by_ham(&self, ham_id: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.ham_id == ham_id)
    }

    /// The type of object `id` as `session_key` sees it (views and filters are per session).
    pub(crate) fn object_type(&self, id: &str, session_key: Option<&str>) -> Option<&'static str> {
        let fixed = match id {
            "ServiceInstance" => Some("ServiceInstance"),
            "SessionManager" => Some("SessionManager"),
            "propertyCollector" => Some("PropertyCollector"),
            "ViewManager" => Some("ViewManager"),
            "TaskManager" => Some("TaskManager"),
            "EventManager" => Some("EventManager"),
            "ScheduledTaskManager" => Some("ScheduledTaskManager"),
            ROOT_FOLDER | HOST_FOLDER | VM_FOLDER | DATASTORE_FOLDER | "group-n6" => Some("Folder"),
            DATACENTER => Some("Datacenter"),
            CLUSTER => Some("ClusterComputeResource"),
            RESOURCE_POOL => Some("ResourcePool"),
            DATASTORE => Some("Datastore"),
            DATASTORE_BROWSER => Some("HostDatastoreBrowser"),
            _ => None,
        };
        if fixed.is_some() {
            return fixed;
        }
        if self.hosts.iter().any(|h| h.id == id) {
            return Some("HostSystem");
        }
        if self.hosts.iter().any(|h| h.ham_id == id) {
            return Some("HostAccessManager");
        }
        if self.vms.iter().any(|v| v.id == id) {
            return Some("VirtualMachine");
        }
        if let Some(host) = id.strip_prefix(ESXCLI_EXECUTER_PREFIX)
            && self.host(host).is_some()
        {
            return Some("ReflectManagedMethodExecuter");
        }
        if let Some(host) = id.strip_prefix(DYNAMIC_TYPE_MANAGER_PREFIX)
            && self.host(host).is_some()
        {
            return Some("InternalDynamicTypeManager");
        }
        if self.tasks.get(id).is_some() {
            return Some("Task");
        }
        if self.stored.is_task(id) {
            return Some("ScheduledTask");
        }
        let owned = |owner: &str| session_key == Some(owner);
        if self.views.get(id).is_some_and(|v| owned(&v.session_key)) {
            return Some("ContainerView");
        }
        if self
            .list_views
            .get(id)
            .is_some_and(|v| owned(&v.session_key))
        {
            return Some("ListView");
        }
        if self
            .collectors
            .get(id)
            .is_some_and(|c| owned(&c.session_key))
        {
            return Some("PropertyCollector");
        }
        if self
            .event_collectors
            .get(id)
            .is_some_and(|c| owned(&c.session_key))
        {
            return Some("EventHistoryCollector");
        }
        if self.filters.get(id).is_some_and(|f| owned(&f.session_key)) {
            return Some("PropertyFilter");
        }
        None
    }

    /// The object `id` as a reference of its real type, if it exists for `session_key`.
    pub(crate) fn lookup(&self, id: &str, session_key: Option<&str>) -> Option<MoRef> {
        self.object_type(id, session_key).map(|t| MoRef::new(t, id))
    }

    /// Queues a task; with no task duration it completes (and takes effect) at once.
    pub(crate) fn start_task(&mut self, task: NewTask) -> MoRef {
        let reference = self.tasks.start(task);
        self.complete_due_tasks();
        reference
    }

    /// Completes every task whose time is up and applies its effect, logging the events.
    pub(crate) fn complete_due_tasks(&mut self) {
        for (effect, user) in self.tasks.complete_due() {
            self.apply(&effect, &user);
        }
    }

    /// Applies a completed task's effect.
    fn apply(&mut self, effect: &TaskEffect, user: &str) {
        let datacenter = Some(EventEntity {
            name: "Datacenter".into(),
            obj: MoRef::new("Datacenter", DATACENTER),
        });
        match effect {
            TaskEffect::None => {}
            TaskEffect::HostMaintenance { host, enter } => {
                let Some(state) = self.host_mut(host) else {
                    return;
                };
                state.in_maintenance = *enter;
                let name = state.name.clone();
                let (type_name, message) = if *enter {
                    (
                        "EnteredMaintenanceModeEvent",
                        format!("Host {name} in Datacenter has entered maintenance mode"),
                    )
                } else {
                    (
                        "ExitMaintenanceModeEvent",
                        format!("Host {name} in Datacenter has exited maintenance mode"),
                    )
                };
                self.events.record(NewEvent {
                    type_name,
                    user_name: user.into(),
                    message,
                    datacenter,
                    host: Some(EventEntity {
                        name,
                        obj: MoRef::new("HostSystem", host),
                    }),
                    ..NewEvent::default()
                });
            }
            TaskEffect::VmPower { vm, on } => {
                let Some(state) = self.vms.iter_mut().find(|v| v.id == *vm) else {
                    return;
                };
                state.powered_on = *on;
                let (vm_name, host_id) = (state.name.clone(), state.host.clone());
                let host_name = self
                    .host(&host_id)
                    .map(|h| h.name.clone())
                    .unwrap_or_default();
                let (type_name, verb) = if *on {
                    ("VmPoweredOnEvent", "powered on")
                } else {
                    ("VmPoweredOffEvent", "powered off")
                };
                self.events.record(NewEvent {
                    type_name,
                    user_name: user.into(),
                    message: format!("{vm_name} on {host_name} in Datacenter is {verb}"),
                    datacenter,
                    host: Some(EventEntity {
                        name: host_name,
                        obj: MoRef::new("HostSystem", host_id),
                    }),
                    vm: Some(EventEntity {
                        name: vm_name,
                        obj: MoRef::new("VirtualMachine", vm),
                    }),
                    ..NewEvent::default()
                });
            }
        }
    }

    /// The VM `id`.
    pub(crate) fn vm(&self, id: &str) -> Option<&VmState> {
        self.vms.iter().find(|v| v.id == id)
    }

    /// References to every VM, on host `host` only when given.
    fn vm_refs(&self, host: Option<&str>) -> Vec<MoRef> {
        self.vms
            .iter()
            .filter(|v| host.is_none_or(|h| v.host == h))
            .map(|v| MoRef::new("VirtualMachine", &v.id))
            .collect()
    }

    /// A new moId for a session-owned object, in vCenter's `session[key]uuid` form.
    pub(crate) fn session_object_id(session_key: &str) -> String {
        format!("session[{session_key}]{}", Uuid::new_v4())
    }

    /// Whether more session-owned objects may be created.
    pub(crate) fn has_room_for_session_object(&self) -> bool {
        self.views.len()
            + self.filters.len()
            + self.list_views.len()
            + self.collectors.len()
            + self.event_collectors.len()
            < MAX_SESSION_OBJECTS
    }

    /// Forgets the views, filters and update version of a session that ended.
    pub(crate) fn drop_session_objects(&mut self, session_key: &str) {
        self.views.retain(|_, v| v.session_key != session_key);
        self.filters.retain(|_, f| f.session_key != session_key);
        self.list_views.retain(|_, v| v.session_key != session_key);
        self.collectors.retain(|_, c| c.session_key != session_key);
        self.event_collectors
            .retain(|_, c| c.session_key != session_key);
        self.update_versions
            .retain(|(key, _), _| key != session_key);
    }

    /// Direct children of `id` in the inventory tree.
    fn children(&self, id: &str) -> Vec<MoRef> {
        match id {
            ROOT_FOLDER => vec![MoRef::new("Datacenter", DATACENTER)],
            DATACENTER => vec![
                MoRef::new("Folder", VM_FOLDER),
                MoRef::new("Folder", HOST_FOLDER),
                MoRef::new("Folder", DATASTORE_FOLDER),
                MoRef::new("Folder", "group-n6"),
            ],
            HOST_FOLDER => vec![MoRef::new("ClusterComputeResource", CLUSTER)],
            VM_FOLDER => self.vm_refs(None),
            DATASTORE_FOLDER => vec![MoRef::new("Datastore", DATASTORE)],
            CLUSTER => self.host_refs(),
            _ => Vec::new(),
        }
    }

    /// References to every host.
    fn host_refs(&self) -> Vec<MoRef> {
        self.hosts
            .iter()
            .map(|h| MoRef::new("HostSystem", &h.id))
            .collect()
    }

    /// The objects a container view shows.
    pub(crate) fn view_contents(&self, view: &ViewRecord) -> Vec<MoRef> {
        let mut out = Vec::new();
        let mut pending = self.children(&view.container.value);
        pending.reverse();
        while let Some(obj) = pending.pop() {
            if view.recursive {
                let mut below = self.children(&obj.value);
                below.reverse();
                pending.extend(below);
            }
            if view.types.is_empty() || view.types.iter().any(|t| is_a(&obj.mo_type, t)) {
                out.push(obj);
            }
        }
        out
    }

    /// Reads property `path` (dotted) of `obj`; `Ok(None)` when it is unset.
    pub(crate) fn read(
        &self,
        obj: &MoRef,
        session: Option<&Session>,
        path: &str,
    ) -> Result<Option<VimValue>, VimFault> {
        let (top, rest) = match path.split_once('.') {
            Some((top, rest)) => (top, Some(rest)),
            None => (path, None),
        };
        let mut value = self
            .properties(obj, session)
            .into_iter()
            .find(|(name, _)| *name == top)
            .ok_or_else(|| faults::invalid_property(path))?
            .1;
        for segment in rest.into_iter().flat_map(|r| r.split('.')) {
            value = match value {
                Some(v @ VimValue::Data(..)) => v.field(segment).cloned(),
                Some(_) => return Err(faults::invalid_property(path)),
                None => None,
            };
        }
        Ok(value)
    }

    /// Every top-level property of `obj` (which must exist), unset ones as `None`.
    pub(crate) fn properties(
        &self,
        obj: &MoRef,
        session: Option<&Session>,
    ) -> Vec<(&'static str, Option<VimValue>)> {
        let id = obj.value.as_str();
        match obj.mo_type.as_str() {
            "ServiceInstance" => vec![
                ("content", Some(service_content())),
                ("serverClock", Some(VimValue::DateTime(now_rfc3339()))),
                (
                    "capability",
                    Some(VimValue::Data(
                        "Capability",
                        vec![
                            ("provisioningSupported", VimValue::Bool(true)),
                            ("multiHostSupported", VimValue::Bool(true)),
                            ("userShellAccessSupported", VimValue::Bool(false)),
                        ],
                    )),
                ),
            ],
            "SessionManager" => vec![
                (
                    "sessionList",
                    Some(VimValue::Array("UserSession", self.sessions.values())),
                ),
                ("currentSession", session.map(Session::to_value)),
                ("defaultLocale", Some(VimValue::str("en"))),
                (
                    "messageLocaleList",
                    Some(VimValue::Array("string", vec![VimValue::str("en")])),
                ),
                (
                    "supportedLocaleList",
                    Some(VimValue::Array("string", vec![VimValue::str("en")])),
                ),
            ],
            "PropertyCollector" => vec![(
                "filter",
                Some(VimValue::morefs(
                    self.filters
                        .iter()
                        .filter(|(_, f)| {
                            Some(f.session_key.as_str()) == session.map(|s| s.key.as_str())
                                && f.collector == id
                        })
                        .map(|(id, _)| MoRef::new("PropertyFilter", id.as_str())),
                )),
            )],
            "TaskManager" => vec![
                ("recentTask", Some(VimValue::morefs(self.tasks.recent()))),
                ("maxCollector", Some(VimValue::Int(32))),
            ],
            "EventManager" => vec![
                ("description", Some(event_description())),
                ("latestEvent", self.events.newest()),
                ("maxCollector", Some(VimValue::Int(32))),
            ],
            "EventHistoryCollector" => match self.event_collectors.get(id) {
                Some(c) => vec![(
                    "latestPage",
                    Some(VimValue::Array(
                        "Event",
                        self.events.latest(c.entity.as_ref(), c.page_size),
                    )),
                )],
                None => Vec::new(),
            },
            "ListView" => match self.list_views.get(id) {
                Some(view) => vec![("view", Some(VimValue::morefs(view.objects.clone())))],
                None => Vec::new(),
            },
            "VirtualMachine" => match self.vm(id) {
                Some(vm) => {
                    let mut props =
                        entity_properties(&vm.name, Some(MoRef::new("Folder", VM_FOLDER)));
                    props.extend(entities::vm_properties(vm));
                    props
                }
                None => Vec::new(),
            },
            "Datastore" => {
                let mut props =
                    entity_properties(DATASTORE_NAME, Some(MoRef::new("Folder", DATASTORE_FOLDER)));
                props.extend(entities::datastore_properties(
                    &self.host_refs(),
                    &self.vm_refs(None),
                    i64::try_from(self.datastore_used).unwrap_or(i64::MAX),
                ));
                props
            }
            "HostDatastoreBrowser" => vec![(
                "datastore",
                Some(VimValue::morefs([MoRef::new("Datastore", DATASTORE)])),
            )],
            "ResourcePool" => {
                let mut props = entity_properties(
                    "Resources",
                    Some(MoRef::new("ClusterComputeResource", CLUSTER)),
                );
                props.extend(entities::resource_pool_properties(
                    MoRef::new("ClusterComputeResource", CLUSTER),
                    &self.vm_refs(None),
                ));
                props
            }
            "ViewManager" => vec![(
                "viewList",
                Some(VimValue::morefs(
                    self.views
                        .iter()
                        .filter(|(_, v)| {
                            Some(v.session_key.as_str()) == session.map(|s| s.key.as_str())
                        })
                        .map(|(id, _)| MoRef::new("ContainerView", id.as_str())),
                )),
            )],
            "ContainerView" => match self.views.get(id) {
                Some(view) => vec![
                    ("container", Some(VimValue::MoRef(view.container.clone()))),
                    (
                        "type",
                        Some(VimValue::Array(
                            "string",
                            view.types.iter().map(VimValue::str).collect(),
                        )),
                    ),
                    ("recursive", Some(VimValue::Bool(view.recursive))),
                    ("view", Some(VimValue::morefs(self.view_contents(view)))),
                ],
                None => Vec::new(),
            },
            "PropertyFilter" => match self.filters.get(id) {
                Some(filter) => vec![(
                    "partialUpdates",
                    Some(VimValue::Bool(filter.partial_updates)),
                )],
                None => Vec::new(),
            },
            "Task" => match self.tasks.get(id) {
                Some(task) => vec![
                    ("info", Some(task.info())),
                    (
                        "value",
                        Some(VimValue::Array("CustomFieldValue", Vec::new())),
                    ),
                    (
                        "availableField",
                        Some(VimValue::Array("CustomFieldDef", Vec::new())),
                    ),
                ],
                None => Vec::new(),
            },
            "HostAccessManager" => match self.hosts.iter().find(|h| h.ham_id == id) {
                Some(host) => vec![(
                    "lockdownMode",
                    Some(VimValue::enumv("HostLockdownMode", &host.lockdown_mode)),
                )],
                None => Vec::new(),
            },
            "HostSystem" => match self.host(id) {
                Some(host) => self.host_properties(host),
                None => Vec::new(),
            },
            "ScheduledTask" => vec![("info", super::scheduled_tasks::info(self, id))],
            _ => self.container_properties(id),
        }
    }

    /// Properties of folders, the datacenter and the cluster.
    fn container_properties(&self, id: &str) -> Vec<(&'static str, Option<VimValue>)> {
        let (name, parent) = match id {
            ROOT_FOLDER => ("Datacenters", None),
            DATACENTER => ("Datacenter", Some(MoRef::new("Folder", ROOT_FOLDER))),
            VM_FOLDER => ("vm", Some(MoRef::new("Datacenter", DATACENTER))),
            HOST_FOLDER => ("host", Some(MoRef::new("Datacenter", DATACENTER))),
            DATASTORE_FOLDER => ("datastore", Some(MoRef::new("Datacenter", DATACENTER))),
            "group-n6" => ("network", Some(MoRef::new("Datacenter", DATACENTER))),
            CLUSTER => ("Cluster", Some(MoRef::new("Folder", HOST_FOLDER))),
            _ => return Vec::new(),
        };
        let mut props = entity_properties(name, parent);
        let strings = |items: &[&str]| {
            VimValue::Array("string", items.iter().map(|s| VimValue::str(*s)).collect())
        };
        match id {
            DATACENTER => props.extend([
                ("vmFolder", Some(VimValue::moref("Folder", VM_FOLDER))),
                ("hostFolder", Some(VimValue::moref("Folder", HOST_FOLDER))),
                (
                    "datastoreFolder",
                    Some(VimValue::moref("Folder", DATASTORE_FOLDER)),
                ),
                ("networkFolder", Some(VimValue::moref("Folder", "group-n6"))),
                ("datastore", Some(datastores())),
                ("network", Some(VimValue::morefs([]))),
            ]),
            CLUSTER => props.extend([
                ("host", Some(VimValue::morefs(self.host_refs()))),
                (
                    "recommendation",
                    Some(super::scheduled_tasks::recommendations(self)),
                ),
                (
                    "resourcePool",
                    Some(VimValue::moref("ResourcePool", RESOURCE_POOL)),
                ),
                ("datastore", Some(datastores())),
                ("network", Some(VimValue::morefs([]))),
            ]),
            _ => {
                let child_type = match id {
                    ROOT_FOLDER => strings(&["Folder", "Datacenter"]),
                    VM_FOLDER => strings(&["Folder", "VirtualMachine", "VirtualApp"]),
                    HOST_FOLDER => strings(&["Folder", "ComputeResource"]),
                    DATASTORE_FOLDER => strings(&["Folder", "Datastore", "StoragePod"]),
                    _ => strings(&["Folder", "Network", "DistributedVirtualSwitch"]),
                };
                props.extend([
                    ("childEntity", Some(VimValue::morefs(self.children(id)))),
                    ("childType", Some(child_type)),
                ]);
            }
        }
        props
    }

    /// Properties of a host.
    fn host_properties(&self, host: &HostState) -> Vec<(&'static str, Option<VimValue>)> {
        let runtime = VimValue::Data(
            "HostRuntimeInfo",
            vec![
                (
                    "connectionState",
                    VimValue::enumv("HostSystemConnectionState", "connected"),
                ),
                (
                    "powerState",
                    VimValue::enumv("HostSystemPowerState", "poweredOn"),
                ),
                ("standbyMode", VimValue::str("none")),
                ("inMaintenanceMode", VimValue::Bool(host.in_maintenance)),
                ("inQuarantineMode", VimValue::Bool(false)),
                ("bootTime", VimValue::DateTime(self.boot_time.clone())),
            ],
        );
        let host_ref = VimValue::moref("HostSystem", &host.id);
        let summary = VimValue::Data(
            "HostListSummary",
            vec![
                ("host", host_ref.clone()),
                ("hardware", entities::host_hardware(&host.id)),
                ("runtime", runtime.clone()),
                (
                    "config",
                    VimValue::Data(
                        "HostListSummaryConfigInfo",
                        vec![
                            ("name", VimValue::str(&host.name)),
                            ("port", VimValue::Int(443)),
                            ("product", esxi_about()),
                            ("vmotionEnabled", VimValue::Bool(false)),
                            ("faultToleranceEnabled", VimValue::Bool(false)),
                        ],
                    ),
                ),
                (
                    "quickStats",
                    VimValue::Data(
                        "HostListSummaryQuickStats",
                        vec![
                            ("overallCpuUsage", VimValue::Int(1200)),
                            ("overallMemoryUsage", VimValue::Int(8192)),
                            ("uptime", VimValue::Int(86_400)),
                        ],
                    ),
                ),
                (
                    "overallStatus",
                    VimValue::enumv("ManagedEntityStatus", "green"),
                ),
                ("rebootRequired", VimValue::Bool(false)),
            ],
        );
        let config = VimValue::Data(
            "HostConfigInfo",
            vec![
                ("host", host_ref),
                ("product", esxi_about()),
                (
                    "adminDisabled",
                    VimValue::Bool(host.lockdown_mode != "lockdownDisabled"),
                ),
                (
                    "lockdownMode",
                    VimValue::enumv("HostLockdownMode", &host.lockdown_mode),
                ),
            ],
        );
        let config_manager = VimValue::Data(
            "HostConfigManager",
            vec![(
                "hostAccessManager",
                VimValue::moref("HostAccessManager", &host.ham_id),
            )],
        );
        let mut props = entity_properties(
            &host.name,
            Some(MoRef::new("ClusterComputeResource", CLUSTER)),
        );
        props.extend([
            ("runtime", Some(runtime)),
            ("summary", Some(summary)),
            ("config", Some(config)),
            ("configManager", Some(config_manager)),
            ("vm", Some(VimValue::morefs(self.vm_refs(Some(&host.id))))),
            ("datastore", Some(datastores())),
            ("network", Some(VimValue::morefs([]))),
        ]);
        props
    }

    /// Maintenance state of host `id`.
    pub(crate) fn host_in_maintenance(&self, id: &str) -> Option<bool> {
        self.host(id).map(|h| h.in_maintenance)
    }

    /// Lockdown mode held by HostAccessManager `ham_id`.
    pub(crate) fn lockdown_mode(&self, ham_id: &str) -> Option<String> {
        self.host_by_ham(ham_id).map(|h| h.lockdown_mode.clone())
    }
}

/// The datastores every host, the cluster and the datacenter see.
fn datastores() -> VimValue {
    VimValue::morefs([MoRef::new("Datastore", DATASTORE)])
}

/// moId prefix of a host's esxcli method executer (`ha-managed-method-executer-host-21`).
pub(crate) const ESXCLI_EXECUTER_PREFIX: &str = "ha-managed-method-executer-";
/// moId prefix of a host's dynamic type manager.
pub(crate) const DYNAMIC_TYPE_MANAGER_PREFIX: &str = "ha-dynamic-type-manager-";

/// The properties every managed entity has.
fn entity_properties(name: &str, parent: Option<MoRef>) -> Vec<(&'static str, Option<VimValue>)> {
    vec![
        ("name", Some(VimValue::str(name))),
        ("parent", parent.map(VimValue::MoRef)),
        (
            "overallStatus",
            Some(VimValue::enumv("ManagedEntityStatus", "green")),
        ),
        (
            "configStatus",
            Some(VimValue::enumv("ManagedEntityStatus", "green")),
        ),
        (
            "value",
            Some(VimValue::Array("CustomFieldValue", Vec::new())),
        ),
        (
            "availableField",
            Some(VimValue::Array("CustomFieldDef", Vec::new())),
        ),
    ]
}

/// `AboutInfo` of the simulated ESXi hosts.
fn esxi_about() -> VimValue {
    about(&[
        ("name", "VMware ESXi"),
        ("fullName", "VMware ESXi 8.0.3 build-24022510"),
        ("vendor", "VMware, Inc."),
        ("version", "8.0.3"),
        ("build", "24022510"),
        ("localeVersion", "INTL"),
        ("localeBuild", "000"),
        ("osType", "vmnix-x86"),
        ("productLineId", "embeddedEsx"),
        ("apiType", "HostAgent"),
        ("apiVersion", API_VERSION),
    ])
}

/// An `AboutInfo` from string fields.
fn about(fields: &[(&'static str, &str)]) -> VimValue {
    VimValue::Data(
        "AboutInfo",
        fields
            .iter()
            .map(|(n, v)| (*n, VimValue::str(*v)))
            .collect(),
    )
}

/// The `ServiceContent` of the simulated vCenter.
pub(crate) fn service_content() -> VimValue {
    let mo = |t: &str, id: &str| VimValue::moref(t, id);
    VimValue::Data(
        "ServiceContent",
        vec![
            ("rootFolder", mo("Folder", ROOT_FOLDER)),
            (
                "propertyCollector",
                mo("PropertyCollector", "propertyCollector"),
            ),
            ("viewManager", mo("ViewManager", "ViewManager")),
            (
                "about",
                about(&[
                    ("name", "VMware vCenter Server"),
                    (
                        "fullName",
                        "VMware vCenter Server 8.0.3 build-24322831 (vcguard simulator)",
                    ),
                    ("vendor", "VMware, Inc."),
                    ("version", "8.0.3"),
                    ("build", "24322831"),
                    ("localeVersion", "INTL"),
                    ("localeBuild", "000"),
                    ("osType", "linux-x64"),
                    ("productLineId", "vpx"),
                    ("apiType", "VirtualCenter"),
                    ("apiVersion", API_VERSION),
                    ("instanceUuid", "8a4f0c52-6f3e-4d7b-9a51-3c2d7e1b9f60"),
                    ("licenseProductName", "VMware VirtualCenter Server"),
                    ("licenseProductVersion", "8.0"),
                ]),
            ),
            ("setting", mo("OptionManager", "VpxSettings")),
            ("userDirectory", mo("UserDirectory", "UserDirectory")),
            ("sessionManager", mo("SessionManager", "SessionManager")),
            (
                "authorizationManager",
                mo("AuthorizationManager", "AuthorizationManager"),
            ),
            (
                "scheduledTaskManager",
                mo("ScheduledTaskManager", "ScheduledTaskManager"),
            ),
            ("alarmManager", mo("AlarmManager", "AlarmManager")),
            ("eventManager", mo("EventManager", "EventManager")),
            ("taskManager", mo("TaskManager", "TaskManager")),
            (
                "extensionManager",
                mo("ExtensionManager", "ExtensionManager"),
            ),
            (
                "customFieldsManager",
                mo("CustomFieldsManager", "CustomFieldsManager"),
            ),
            ("searchIndex", mo("SearchIndex", "SearchIndex")),
            ("fileManager", mo("FileManager", "FileManager")),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursive_host_view_from_root_lists_the_three_hosts() {
        let inv = Inventory::default();
        let view = ViewRecord {
            session_key: "k".into(),
            container: MoRef::new("Folder", ROOT_FOLDER),
            types: vec!["HostSystem".into()],
            recursive: true,
        };
        let ids: Vec<_> = inv
            .view_contents(&view)
            .into_iter()
            .map(|m| m.value)
            .collect();
        assert_eq!(ids, ["host-21", "host-22", "host-23"]);
        let flat = ViewRecord {
            recursive: false,
            ..view
        };
        assert!(inv.view_contents(&flat).is_empty());
    }

    #[test]
    fn dotted_paths_walk_data_objects() {
        let inv = Inventory::default();
        let host = MoRef::new("HostSystem", "host-22");
        assert_eq!(
            inv.read(&host, None, "runtime.inMaintenanceMode")
                .ok()
                .flatten(),
            Some(VimValue::Bool(false))
        );
        assert_eq!(
            inv.read(&host, None, "configManager.hostAccessManager")
                .ok()
                .flatten(),
            Some(VimValue::moref("HostAccessManager", "ham-22"))
        );
        assert_eq!(
            inv.read(&host, None, "bogus")
                .map(|_| ())
                .expect_err("must fail")
                .type_name,
            "InvalidProperty"
        );
        assert_eq!(
            inv.read(&host, None, "name.x")
                .map(|_| ())
                .expect_err("must fail")
                .type_name,
            "InvalidProperty"
        );
    }
}
