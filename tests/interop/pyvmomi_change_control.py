#!/usr/bin/env python3
"""pyVmomi without customHeaders through the vcguard gateway: approvals and ticket claims.

Usage: pyvmomi_change_control.py MODE HOST PORT USER PASSWORD
  MODE request  disable lockdown on host-21: refused with an approval request; prints
                "APPROVAL <id>"
  MODE retry    the same call passes once (after the approval), a second time it is refused
  MODE claimed  with a ticket claim on host-21 (made by the test): maintenance on host-21
                passes without any ticket header, host-22 is refused
Prints one line per step and "PASS <mode>"; exits non-zero on the first failure.
"""

import re
import sys
import traceback

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim


class StepFailed(Exception):
    """A step's check did not hold."""


def check(condition, message):
    if not condition:
        raise StepFailed(message)


def host_named(si, mo_id):
    return vim.HostSystem(mo_id, si._stub)


def refused(call, needle):
    try:
        call()
    except vim.fault.RestrictedByAdministrator as fault:
        check(needle in fault.msg, f"the fault does not say {needle!r}: {fault.msg}")
        return fault.msg
    raise StepFailed(f"not refused (expected {needle!r})")


def run(mode, server, port, user, password):
    si = SmartConnect(host=server, port=port, protocol="https", user=user, pwd=password,
                      disableSslCertValidation=True)
    try:
        host = host_named(si, "host-21")
        ham = host.configManager.hostAccessManager
        if mode == "request":
            ham.ChangeLockdownMode("lockdownNormal")
            msg = refused(lambda: ham.ChangeLockdownMode("lockdownDisabled"), "Approval request apr-")
            check("change-approvers" in msg, f"no group in {msg}")
            approval = re.search(r"apr-[a-z2-7]{12}", msg).group(0)
            print(f"ok   request: RestrictedByAdministrator: {msg}")
            print(f"APPROVAL {approval}")
        elif mode == "retry":
            ham.ChangeLockdownMode("lockdownDisabled")
            check(ham.lockdownMode == "lockdownDisabled", f"lockdownMode is {ham.lockdownMode}")
            print("ok   retry: the approved call passed")
            refused(lambda: ham.ChangeLockdownMode("lockdownDisabled"), "Approval request apr-")
            print("ok   retry again: refused, a new request")
        elif mode == "claimed":
            state = WaitForTask(host.EnterMaintenanceMode_Task(timeout=0))
            check(state == "success", f"task state {state}")
            check(host.runtime.inMaintenanceMode is True, "host-21 not in maintenance mode")
            print("ok   claimed: host-21 entered maintenance mode without a ticket header")
            other = host_named(si, "host-22")
            refused(lambda: other.EnterMaintenanceMode_Task(timeout=0), "maintenance-needs-ticket")
            print("ok   claimed: host-22 (not claimed) refused")
        else:
            raise StepFailed(f"unknown mode {mode}")
        print(f"PASS {mode}")
    finally:
        Disconnect(si)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        run(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    except Exception:  # noqa: BLE001 - the test prints whatever went wrong
        traceback.print_exc()
        sys.exit(1)
