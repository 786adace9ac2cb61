"""Who runs a trial: this process's identity, and when another worker's process is surely gone.

A process id says something only inside its own PID namespace: two containers that share a
host name (``--network host``, or the same ``hostname:`` in a compose file) each have their own
process 7. So a process id is trusted only when host name, kernel boot and PID namespace all
match this process's; anywhere else, only the trial's heartbeat tells (:mod:`.heartbeat`).
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from typing import Any

#: This process's random token: with the process id, it tells this process's own trials
#: apart from every other (a forked child inherits the token, not the process id).
TOKEN = uuid.uuid4().hex[:16]


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs in this PID namespace (or cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def pid_namespace() -> str | None:
    """This kernel boot and PID namespace, e.g. ``<boot id>/pid:[4026531836]`` (Linux only).

    Two processes with the same value see the same process ids. The boot id tells two machines
    apart whose initial PID namespaces have the same inode number.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def identity() -> dict[str, Any]:
    """The trial attributes that say which process runs it (``host``, ``pid``, ...)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "worker": TOKEN,
        "pidns": pid_namespace(),
    }


def is_this_process(attrs: dict[str, Any]) -> bool:
    """Whether these identity attributes are this very process's (token and process id)."""
    return attrs.get("worker") == TOKEN and attrs.get("pid") == os.getpid()


def process_gone(attrs: dict[str, Any]) -> bool:
    """Whether the process these identity attributes name has surely ended.

    Only for a process of this host, kernel boot and PID namespace: there a missing process
    id means the process is gone. Anywhere else (another container, another host, or
    attributes written before the namespace was recorded) nothing can be concluded: False.
    """
    pid = attrs.get("pid")
    namespace = pid_namespace()
    return (
        namespace is not None
        and attrs.get("pidns") == namespace
        and attrs.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not pid_alive(pid)
    )
