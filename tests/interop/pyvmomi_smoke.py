#!/usr/bin/env python3
"""pyVmomi smoke test against vcguard's vCenter simulator (directly or through the gateway).

Usage: pyvmomi_smoke.py HOST PORT PROTOCOL USER PASSWORD
  PROTOCOL is http or https (certificates are not checked).

Prints one line per step and exits non-zero with a message on the first failure.
"""

import sys
import traceback

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl


class StepFailed(Exception):
    """A step's check did not hold."""


def check(condition, message):
    if not condition:
        raise StepFailed(message)


def run(server, port, protocol, user, password):
    step = "connect"
    try:
        si = SmartConnect(host=server, port=port, protocol=protocol, user=user, pwd=password,
                          disableSslCertValidation=True)
        print(f"ok   connect: logged in to {protocol}://{server}:{port} as {user}")

        step = "service content"
        content = si.RetrieveContent()
        check(content.about.apiType == "VirtualCenter", f"apiType is {content.about.apiType!r}")
        print(f"ok   service content: {content.about.fullName} (API {content.about.apiVersion})")

        step = "current session"
        session = content.sessionManager.currentSession
        check(session is not None and session.userName, "no current session")
        print(f"ok   current session: {session.userName}")

        step = "container view"
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        hosts = list(view.view)
        check(len(hosts) >= 1, "no hosts in the container view")
        print(f"ok   container view: {len(hosts)} hosts: {', '.join(h._moId for h in hosts)}")

        step = "property collector"
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="traverseEntities", path="view", skip=False, type=vim.view.ContainerView)
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(
                type=vim.HostSystem, pathSet=["name", "runtime.inMaintenanceMode"])])
        result = content.propertyCollector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        names = sorted(p.val for o in result.objects for p in o.propSet if p.name == "name")
        check(len(names) == len(hosts), f"RetrievePropertiesEx returned {names}")
        print(f"ok   property collector: {', '.join(names)}")

        host = hosts[0]
        step = "host.name"
        name = host.name
        check(bool(name), "empty host name")
        print(f"ok   host.name: {host._moId} is {name}")

        step = "host.runtime.inMaintenanceMode"
        check(host.runtime.inMaintenanceMode is False, "host starts in maintenance mode")
        print(f"ok   host.runtime.inMaintenanceMode: {host.runtime.inMaintenanceMode}")

        step = "host.configManager.hostAccessManager"
        ham = host.configManager.hostAccessManager
        check(isinstance(ham, vim.host.HostAccessManager), f"got {ham!r}")
        print(f"ok   host.configManager.hostAccessManager: {ham._moId}")

        step = "EnterMaintenanceMode_Task"
        task = host.EnterMaintenanceMode_Task(timeout=0)
        state = WaitForTask(task)
        check(state == "success", f"task state {state}")
        check(host.runtime.inMaintenanceMode is True, "host not in maintenance mode after the task")
        print(f"ok   EnterMaintenanceMode_Task: {task._moId} {state} ({task.info.descriptionId}); inMaintenanceMode=True")

        step = "EnterMaintenanceMode_Task again"
        try:
            host.EnterMaintenanceMode_Task(timeout=0)
            raise StepFailed("no fault for entering maintenance mode twice")
        except vim.fault.InvalidState as fault:
            print(f"ok   EnterMaintenanceMode_Task again: InvalidState ({fault.msg})")

        step = "ExitMaintenanceMode_Task"
        task = host.ExitMaintenanceMode_Task(timeout=0)
        state = WaitForTask(task)
        check(state == "success", f"task state {state}")
        check(host.runtime.inMaintenanceMode is False, "host still in maintenance mode")
        print(f"ok   ExitMaintenanceMode_Task: {task._moId} {state}; inMaintenanceMode=False")

        step = "ChangeLockdownMode"
        ham.ChangeLockdownMode("lockdownNormal")
        mode = ham.lockdownMode
        check(mode == "lockdownNormal", f"lockdownMode is {mode}")
        print(f"ok   ChangeLockdownMode: {ham._moId}.lockdownMode={mode}")

        step = "ChangeLockdownMode back"
        ham.ChangeLockdownMode("lockdownDisabled")
        check(ham.lockdownMode == "lockdownDisabled", f"lockdownMode is {ham.lockdownMode}")
        print(f"ok   ChangeLockdownMode back: {ham._moId}.lockdownMode={ham.lockdownMode}")

        step = "unknown host"
        try:
            vim.HostSystem("host-999", si._stub).EnterMaintenanceMode_Task(timeout=0)
            raise StepFailed("no fault for an unknown host")
        except vmodl.fault.ManagedObjectNotFound as fault:
            print(f"ok   unknown host: ManagedObjectNotFound ({fault.obj._moId})")

        step = "destroy view"
        view.Destroy()
        print("ok   destroy view")

        step = "disconnect"
        Disconnect(si)
        print("ok   disconnect")

        step = "wrong password"
        try:
            SmartConnect(host=server, port=port, protocol=protocol,
                         user=user, pwd=password + "-wrong", disableSslCertValidation=True)
            raise StepFailed("login with a wrong password succeeded")
        except vim.fault.InvalidLogin as fault:
            print(f"ok   wrong password: InvalidLogin ({fault.msg})")
    except StepFailed as failure:
        print(f"FAIL {step}: {failure}")
        return 1
    except Exception as error:  # noqa: BLE001 - any error fails the step it happened in
        traceback.print_exc()
        print(f"FAIL {step}: {type(error).__name__}: {error}")
        return 1
    print("PASS pyvmomi smoke")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[3] not in ("http", "https"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
