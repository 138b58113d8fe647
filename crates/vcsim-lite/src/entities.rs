//! The virtual machines, the datastore and the resource pool of the simulated cluster.

use super::value::{MoRef, VimValue};

/// The cluster's root resource pool.
pub(crate) const RESOURCE_POOL: &str = "resgroup-8";
/// The only datastore.
pub(crate) const DATASTORE: &str = "datastore-41";
/// Its name, as used in `[datastore1] path` and `dsName=`.
pub(crate) const DATASTORE_NAME: &str = "datastore1";
/// The datastore's browser.
pub(crate) const DATASTORE_BROWSER: &str = "datastoreBrowser-41";
/// Capacity reported for the datastore (2 TiB).
const DATASTORE_CAPACITY: i64 = 2 << 40;
/// Memory of each simulated host (64 GiB).
const HOST_MEMORY: i64 = 64 << 30;

/// State of one simulated virtual machine.
#[derive(Debug, Clone)]
pub(crate) struct VmState {
    /// moId, e.g. `vm-31`.
    pub(crate) id: String,
    /// VM name.
    pub(crate) name: String,
    /// moId of the host it runs on.
    pub(crate) host: String,
    /// Whether it is powered on.
    pub(crate) powered_on: bool,
}

/// The VMs the simulator starts with: one per host, the last one powered off.
pub(crate) fn initial_vms() -> Vec<VmState> {
    [
        ("vm-31", "web-01", "host-21", true),
        ("vm-32", "db-01", "host-22", true),
        ("vm-33", "test-01", "host-23", false),
    ]
    .into_iter()
    .map(|(id, name, host, powered_on)| VmState {
        id: id.into(),
        name: name.into(),
        host: host.into(),
        powered_on,
    })
    .collect()
}

/// `VirtualMachinePowerState` of a VM.
pub(crate) fn power_state(vm: &VmState) -> VimValue {
    let state = if vm.powered_on {
        "poweredOn"
    } else {
        "poweredOff"
    };
    VimValue::enumv("VirtualMachinePowerState", state)
}

/// Properties of a VM that are not common to every managed entity.
pub(crate) fn vm_properties(vm: &VmState) -> Vec<(&'static str, Option<VimValue>)> {
    let host = VimValue::moref("HostSystem", &vm.host);
    let runtime = VimValue::Data(
        "VirtualMachineRuntimeInfo",
        vec![
            ("host", host),
            (
                "connectionState",
                VimValue::enumv("VirtualMachineConnectionState", "connected"),
            ),
            ("powerState", power_state(vm)),
            (
                "faultToleranceState",
                VimValue::enumv("VirtualMachineFaultToleranceState", "notConfigured"),
            ),
            ("toolsInstallerMounted", VimValue::Bool(false)),
            ("consolidationNeeded", VimValue::Bool(false)),
        ],
    );
    let vmx = format!("[{DATASTORE_NAME}] {0}/{0}.vmx", vm.name);
    let summary_config = VimValue::Data(
        "VirtualMachineConfigSummary",
        vec![
            ("name", VimValue::str(&vm.name)),
            ("template", VimValue::Bool(false)),
            ("vmPathName", VimValue::str(&vmx)),
            ("memorySizeMB", VimValue::Int(4096)),
            ("numCpu", VimValue::Int(2)),
            ("guestId", VimValue::str("otherGuest64")),
            ("guestFullName", VimValue::str("Other (64-bit)")),
        ],
    );
    let summary = VimValue::Data(
        "VirtualMachineSummary",
        vec![
            ("vm", VimValue::moref("VirtualMachine", &vm.id)),
            ("runtime", runtime.clone()),
            ("config", summary_config),
            (
                "quickStats",
                VimValue::Data("VirtualMachineQuickStats", Vec::new()),
            ),
            (
                "overallStatus",
                VimValue::enumv("ManagedEntityStatus", "green"),
            ),
        ],
    );
    vec![
        ("parentVApp", None),
        ("runtime", Some(runtime)),
        ("summary", Some(summary)),
        (
            "resourcePool",
            Some(VimValue::moref("ResourcePool", RESOURCE_POOL)),
        ),
        (
            "datastore",
            Some(VimValue::morefs([MoRef::new("Datastore", DATASTORE)])),
        ),
        ("network", Some(VimValue::morefs([]))),
    ]
}

/// Properties of the datastore that are not common to every managed entity.
pub(crate) fn datastore_properties(
    hosts: &[MoRef],
    vms: &[MoRef],
    used: i64,
) -> Vec<(&'static str, Option<VimValue>)> {
    let summary = VimValue::Data(
        "DatastoreSummary",
        vec![
            ("datastore", VimValue::moref("Datastore", DATASTORE)),
            ("name", VimValue::str(DATASTORE_NAME)),
            (
                "url",
                VimValue::str(format!("ds:///vmfs/volumes/{DATASTORE_NAME}/")),
            ),
            ("capacity", VimValue::Long(DATASTORE_CAPACITY)),
            (
                "freeSpace",
                VimValue::Long((DATASTORE_CAPACITY - used).max(0)),
            ),
            ("accessible", VimValue::Bool(true)),
            ("multipleHostAccess", VimValue::Bool(true)),
            ("type", VimValue::str("VMFS")),
            ("maintenanceMode", VimValue::str("normal")),
        ],
    );
    let mounts = hosts
        .iter()
        .map(|h| {
            VimValue::Data(
                "DatastoreHostMount",
                vec![
                    ("key", VimValue::MoRef(h.clone())),
                    (
                        "mountInfo",
                        VimValue::Data(
                            "HostMountInfo",
                            vec![
                                ("accessMode", VimValue::str("readWrite")),
                                ("mounted", VimValue::Bool(true)),
                                ("accessible", VimValue::Bool(true)),
                            ],
                        ),
                    ),
                ],
            )
        })
        .collect();
    vec![
        ("summary", Some(summary)),
        (
            "browser",
            Some(VimValue::moref("HostDatastoreBrowser", DATASTORE_BROWSER)),
        ),
        ("host", Some(VimValue::Array("DatastoreHostMount", mounts))),
        ("vm", Some(VimValue::morefs(vms.iter().cloned()))),
    ]
}

/// Properties of the cluster's root resource pool that are not common to every entity.
pub(crate) fn resource_pool_properties(
    owner: MoRef,
    vms: &[MoRef],
) -> Vec<(&'static str, Option<VimValue>)> {
    vec![
        ("owner", Some(VimValue::MoRef(owner))),
        ("resourcePool", Some(VimValue::morefs([]))),
        ("vm", Some(VimValue::morefs(vms.iter().cloned()))),
    ]
}

/// `HostListSummary.hardware` of a simulated host.
pub(crate) fn host_hardware(host_id: &str) -> VimValue {
    VimValue::Data(
        "HostHardwareSummary",
        vec![
            ("vendor", VimValue::str("vcguard simulator")),
            ("model", VimValue::str("Simulated Platform")),
            (
                "uuid",
                VimValue::str(format!("4c4c4544-simulated-{host_id}")),
            ),
            ("memorySize", VimValue::Long(HOST_MEMORY)),
            ("cpuModel", VimValue::str("Simulated CPU @ 2.40GHz")),
            ("cpuMhz", VimValue::Int(2400)),
            ("numCpuPkgs", VimValue::Int(2)),
            ("numCpuCores", VimValue::Int(16)),
            ("numCpuThreads", VimValue::Int(32)),
            ("numNics", VimValue::Int(2)),
            ("numHBAs", VimValue::Int(2)),
        ],
    )
}
