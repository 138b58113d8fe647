#!/usr/bin/env python3
"""pyVmomi's WaitForTask through the vcguard gateway on a task that outlasts its response timeout.

Usage: pyvmomi_long_task.py HOST PORT USER PASSWORD TICKET
  Enters maintenance mode on the first host with TICKET in customHeaders and waits with
  pyVim.task.WaitForTask, which blocks in PropertyCollector.WaitForUpdates with no time limit.
  Prints one line per step and the seconds waited; exits non-zero on failure.
"""

import sys
import time
import traceback

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim


def run(server, port, user, password, ticket):
    try:
        si = SmartConnect(host=server, port=port, protocol="https", user=user, pwd=password,
                          disableSslCertValidation=True, customHeaders={"X-Change-Ticket": ticket})
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        host = sorted(view.view, key=lambda h: h._moId)[0]
        view.Destroy()
        started = time.monotonic()
        task = host.EnterMaintenanceMode_Task(timeout=0)
        state = WaitForTask(task)
        waited = time.monotonic() - started
        if state != "success" or host.runtime.inMaintenanceMode is not True:
            print(f"FAIL WaitForTask: state {state}, inMaintenanceMode={host.runtime.inMaintenanceMode}")
            return 1
        print(f"ok   WaitForTask: {task._moId} {state} after {waited:.1f} s")
        Disconnect(si)
    except Exception as error:  # noqa: BLE001 - any error fails the run
        traceback.print_exc()
        print(f"FAIL {type(error).__name__}: {error}")
        return 1
    print(f"PASS waited {waited:.1f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
