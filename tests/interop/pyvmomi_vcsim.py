#!/usr/bin/env python3
"""pyVmomi against govmomi's vcsim, directly or through the vcguard gateway.

Usage: pyvmomi_vcsim.py HOST PORT USER PASSWORD TICKET
  Runs the same steps whatever is at HOST:PORT and prints one line per step,
  "STEP: OBSERVATION", so that a direct run and a run through the gateway can be compared
  line by line. Certificates are not checked (both are self-signed test certificates).
  Ends with "DONE"; exits non-zero only if the script itself breaks.
"""

import sys
import traceback

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

HOST_ID = "host-21"
VM_ID = "vm-57"
POLICIES = ("maintenance-needs-ticket", "lockdown-no-strict", "baseline-permit")


def describe_fault(fault):
    name = getattr(fault, "_wsdlName", type(fault).__name__)
    text = str(getattr(fault, "msg", "") or "")
    named = [p for p in POLICIES if p in text]
    return f"fault {name}" + (f" ({named[0]})" if named else "")


def observe(step, action):
    try:
        result = action()
    except (vim.fault.VimFault, vmodl.MethodFault) as fault:
        result = describe_fault(fault)
    print(f"{step}: {result}", flush=True)


def connect(server, port, user, password, headers=None):
    return SmartConnect(host=server, port=port, protocol="https", user=user, pwd=password,
                        disableSslCertValidation=True, customHeaders=headers)


def run_task(task):
    try:
        return f"task {WaitForTask(task)}"
    except (vim.fault.VimFault, vmodl.MethodFault) as fault:
        return f"task error {describe_fault(fault)}"


def inventory(si):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.HostSystem, vim.VirtualMachine], True)
    names = sorted(f"{e._moId}={e.name}" for e in view.view)
    view.Destroy()
    return " ".join(names)


def main(server, port, user, password, ticket):
    observe("wrong password", lambda: connect(server, port, user, "not-the-password") and "logged in")
    si = connect(server, port, user, password)
    about = si.RetrieveContent().about
    print(f"connect: apiType={about.apiType} apiVersion={about.apiVersion}", flush=True)
    observe("inventory", lambda: inventory(si))

    stub = si._stub
    host = vim.HostSystem(HOST_ID, stub)
    vm = vim.VirtualMachine(VM_ID, stub)
    observe("PowerOffVM_Task", lambda: f"{run_task(vm.PowerOffVM_Task())}; {vm.runtime.powerState}")
    observe("PowerOnVM_Task", lambda: f"{run_task(vm.PowerOnVM_Task())}; {vm.runtime.powerState}")

    observe("EnterMaintenanceMode_Task without a ticket",
            lambda: run_task(host.EnterMaintenanceMode_Task(timeout=0)))
    observe("inMaintenanceMode after it", lambda: host.runtime.inMaintenanceMode)
    observe("ExitMaintenanceMode_Task", lambda: run_task(host.ExitMaintenanceMode_Task(timeout=0)))

    ham = host.configManager.hostAccessManager
    observe("hostAccessManager reference", lambda: ham._moId)
    observe("ChangeLockdownMode lockdownStrict", lambda: ham.ChangeLockdownMode("lockdownStrict"))
    Disconnect(si)

    si = connect(server, port, user, password, {"X-Change-Ticket": ticket})
    host = vim.HostSystem(HOST_ID, si._stub)
    observe("EnterMaintenanceMode_Task with a ticket",
            lambda: run_task(host.EnterMaintenanceMode_Task(timeout=0)))
    observe("inMaintenanceMode with a ticket", lambda: host.runtime.inMaintenanceMode)
    observe("ExitMaintenanceMode_Task again",
            lambda: f"{run_task(host.ExitMaintenanceMode_Task(timeout=0))}; "
                    f"{host.runtime.inMaintenanceMode}")
    Disconnect(si)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
    except Exception:  # noqa: BLE001 - the traceback is the report
        traceback.print_exc()
        sys.exit(1)
