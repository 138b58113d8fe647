#!/usr/bin/env python3
"""pyVmomi through the vcguard gateway: the policies hold for the most used SOAP client.

Usage: pyvmomi_gateway.py HOST PORT USER PASSWORD TICKET
  Connects over HTTPS (the test gateway's certificate is self-signed, so it is not checked),
  with the simulator behind the gateway. Prints one line per step; exits non-zero on the first failure.
"""

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


def first_host(si):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    hosts = sorted(view.view, key=lambda h: h._moId)
    view.Destroy()
    check(hosts, "no hosts")
    return hosts[0]


def run(server, port, user, password, ticket):
    step = "connect"
    try:
        si = SmartConnect(host=server, port=port, protocol="https", user=user, pwd=password,
                          disableSslCertValidation=True)
        print(f"ok   connect: logged in through the gateway at https://{server}:{port}")
        host = first_host(si)
        ham = host.configManager.hostAccessManager

        step = "EnterMaintenanceMode_Task without a ticket"
        try:
            host.EnterMaintenanceMode_Task(timeout=0)
            raise StepFailed("maintenance mode without a ticket was not refused")
        except vim.fault.RestrictedByAdministrator as fault:
            check("maintenance-needs-ticket" in fault.msg, f"msg does not name the policy: {fault.msg}")
            print(f"ok   {step}: RestrictedByAdministrator: {fault.msg}")
        check(host.runtime.inMaintenanceMode is False, "the host entered maintenance mode anyway")

        step = "ChangeLockdownMode('lockdownStrict')"
        try:
            ham.ChangeLockdownMode("lockdownStrict")
            raise StepFailed("strict lockdown was not refused")
        except vim.fault.RestrictedByAdministrator as fault:
            check("lockdown-no-strict" in fault.msg, f"msg does not name the policy: {fault.msg}")
            print(f"ok   {step}: RestrictedByAdministrator: {fault.msg}")
        check(ham.lockdownMode == "lockdownDisabled", f"lockdownMode is {ham.lockdownMode}")

        step = "ChangeLockdownMode('lockdownNormal')"
        ham.ChangeLockdownMode("lockdownNormal")
        check(ham.lockdownMode == "lockdownNormal", f"lockdownMode is {ham.lockdownMode}")
        print(f"ok   {step}: lockdownMode={ham.lockdownMode}")

        step = "disconnect"
        Disconnect(si)
        print("ok   disconnect")

        step = "EnterMaintenanceMode_Task with a ticket in customHeaders"
        si = SmartConnect(host=server, port=port, protocol="https", user=user, pwd=password,
                          disableSslCertValidation=True, customHeaders={"X-Change-Ticket": ticket})
        host = first_host(si)
        task = host.EnterMaintenanceMode_Task(timeout=0)
        state = WaitForTask(task)
        check(state == "success", f"task state {state}")
        check(host.runtime.inMaintenanceMode is True, "host not in maintenance mode after the task")
        print(f"ok   {step}: {task._moId} {state}; inMaintenanceMode=True")
        Disconnect(si)
        print("ok   disconnect")
    except StepFailed as failure:
        print(f"FAIL {step}: {failure}")
        return 1
    except Exception as error:  # noqa: BLE001 - any error fails the step it happened in
        traceback.print_exc()
        print(f"FAIL {step}: {type(error).__name__}: {error}")
        return 1
    print("PASS pyvmomi through the gateway")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
