"""Processes of a running `serve`, read from /proc and serve's log, for the reliability tests."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from support import Server, wait_until


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    found = children(pid)
    for child in list(found):
        found |= descendants(child)
    return found


def child_pid(server: Server, name: str) -> int:
    """The pid of serve's `name` child (gunicorn's or nginx's master), from serve's own log."""
    match = re.search(rf"started {name} \(pid (\d+)\)", server.log())
    assert match, f"serve did not log starting {name}:\n{server.log()}"
    return int(match.group(1))


def worker_pids(server: Server) -> set[int]:
    return children(child_pid(server, "gunicorn"))


def gunicorn_workers(server: Server, count: int, timeout: float = 10) -> set[int]:
    """The worker pids, once gunicorn runs `count` of them and each has logged its boot (a worker
    is a process a moment before it writes "Booting worker")."""
    def booted() -> set[int] | None:
        pids = worker_pids(server)
        log = server.log()
        if len(pids) == count and all(f"Booting worker with pid: {pid}" in log for pid in pids):
            return pids
        return None

    return wait_until(booted, timeout, what=f"{count} gunicorn workers")


def worker_boots(server: Server) -> int:
    """How many workers gunicorn has booted so far (replacements included)."""
    return server.log().count("Booting worker with pid")


def refuses_connections(port: int) -> bool:
    """True once nothing listens on *port*.

    A connection the kernel queued while nginx was closing its listening socket is reset rather
    than refused: it was never accepted, so it counts as refused.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False
