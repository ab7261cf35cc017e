"""Hosts for multi-host tests: one network namespace per host, joined by a bridge that lives in a
namespace of its own, with addresses from 198.18.0.0/15 (reserved for such tests) and each
namespace's /etc/netns/<name>/hosts naming every host (`ip netns exec` shows it as /etc/hosts).

Nothing touches the machine's own interfaces or routes: both ends of every veth pair are created
inside namespaces. `Network.remove()` deletes the namespaces (and with them every interface in
them) and their /etc/netns folders, and is safe to call twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
SUBNET = "198.18"  # 198.18.0.0/15: benchmarking addresses, never routed


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def can_make_namespaces() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "network namespaces need iproute2's `ip`"
    probe = f"byo-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except OSError as error:
        return False, f"cannot create a network namespace: {error}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return True, ""


@dataclass
class Network:
    """`hosts` namespaces named after the job's hosts (`algo-1`, ...) on one bridge."""

    names: list[str]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    created: list[str] = field(default_factory=list)
    subnet: int = 0

    def namespace(self, host: str) -> str:
        return f"byo-{self.tag}-{host}"

    @property
    def bridge_namespace(self) -> str:
        return f"byo-{self.tag}-bridge"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.subnet}.{self.names.index(host) + 1}"

    def create(self) -> Network:
        self.subnet = int(self.tag[:2], 16) % 256
        bridge = self.bridge_namespace
        self._add(bridge)
        _ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge, "link", "set", "br0", "up")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{self.address(h)} {h}\n" for h in self.names)
        for index, host in enumerate(self.names):
            ns = self.namespace(host)
            self._add(ns)
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "hosts").write_text(hosts)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"port{index}", "netns", bridge)
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", bridge, "link", "set", f"port{index}", "master", "br0")
            _ip("-n", bridge, "link", "set", f"port{index}", "up")
        return self

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.created.append(ns)

    def command(self, host: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def cut(self, host: str) -> None:
        """Take a host off the network (its link down), as a dead instance would vanish."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "down")

    def remove(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        self.created.clear()
