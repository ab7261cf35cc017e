"""The cluster of a training job, as SageMaker describes it in resourceconfig.json.

Every host runs the same `train`. The hosts, the current host and the network interface come
from /opt/ml/input/config/resourceconfig.json; the leader is the first of `hosts` (SageMaker
lists them sorted; local mode names them `algo-1-xxxxx`, so no name is assumed). A host finds
every other by name, with bounded retries and back-off: names may resolve late, and neither
/etc/hostname nor /etc/hosts is to be trusted (SageMaker's guide). Under `ShardedByS3Key` each
host reads the files it was given; under `FullyReplicated` every host has every file, and each
reads its share (by size, the same split on every host).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

log = logging.getLogger("train")

SINGLE_HOST = "algo-1"  # resourceconfig.json absent: a run by hand, one host
SHARDED = "ShardedByS3Key"
REPLICATED = "FullyReplicated"
FIRST_RETRY, LONGEST_RETRY = 0.1, 5.0  # seconds between look-ups: doubling up to this


@dataclass(frozen=True)
class Plan:
    """Who is who in the job: `hosts` in SageMaker's order, this host, and its network interface."""

    hosts: tuple[str, ...]
    current: str
    interface: str | None = None

    @property
    def leader(self) -> str:
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.current == self.leader

    @property
    def several(self) -> bool:
        return len(self.hosts) > 1

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current)


def plan(resource_config: dict[str, Any]) -> Plan:
    """The plan of a resourceconfig.json (already read as a dict; empty: one host)."""
    if not resource_config:
        return Plan((SINGLE_HOST,), SINGLE_HOST)
    hosts = resource_config.get("hosts")
    current = resource_config.get("current_host")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise UserError(f"resourceconfig.json: 'hosts' must be a non-empty list of host names, not {hosts!r}")
    if len(set(hosts)) != len(hosts):
        raise UserError(f"resourceconfig.json: 'hosts' names a host twice: {hosts}")
    if current not in hosts:
        raise UserError(f"resourceconfig.json: current_host {current!r} is not one of hosts {hosts}")
    interface = resource_config.get("network_interface_name")
    return Plan(tuple(hosts), current, interface if isinstance(interface, str) and interface else None)


def resolve(name: str, wait: float, lookup: Callable[[str], str] = socket.gethostbyname,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """The IPv4 address of `name`, looked up again with growing pauses until `wait` seconds have
    passed (a new instance's name may take a while to appear in DNS)."""
    deadline = clock() + wait
    pause = FIRST_RETRY
    tries = 0
    while True:
        tries += 1
        try:
            return lookup(name)
        except OSError as error:
            left = deadline - clock()
            if left <= 0:
                raise UserError(
                    f"host name {name!r} did not resolve within {wait:g}s ({tries} look-ups; last: {error}); "
                    f"every host of the job must resolve every other's name (check the VPC's DNS settings)"
                ) from None
            log.info("host %s does not resolve yet (%s); retrying in %.1fs", name, error, min(pause, left))
            sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_RETRY)


def distribution(channel: str, input_data_config: dict[str, Any]) -> str:
    value = (input_data_config.get(channel) or {}).get("S3DistributionType") or REPLICATED
    if value not in (SHARDED, REPLICATED):
        raise UserError(f"channel '{channel}' has S3DistributionType {value!r}; expected {SHARDED} or {REPLICATED}")
    return value


def share(files: Sequence[Path], hosts: int, rank: int, size: Callable[[Path], int] = lambda p: p.stat().st_size
          ) -> list[Path]:
    """This host's share of files every host holds: largest first, each to the host with the fewest
    bytes so far (the lowest rank on a tie), so every host computes the same split. A host may get
    none (more hosts than files)."""
    loads = [0] * hosts
    mine = []
    for path in sorted(files, key=lambda p: (-size(p), str(p))):
        target = min(range(hosts), key=lambda h: (loads[h], h))
        loads[target] += size(path)
        if target == rank:
            mine.append(path)
    return sorted(mine)


def check_input_modes(plan_: Plan, input_data_config: dict[str, Any]) -> None:
    """Pipe mode streams one copy of the data to each host: several hosts would each train on all
    of it (FullyReplicated) or need a split this container does not make; refused up front."""
    if not plan_.several:
        return
    piped = sorted(name for name, config in input_data_config.items()
                   if isinstance(config, dict) and config.get("TrainingInputMode") == "Pipe")
    if piped:
        raise UserError(f"channel(s) {', '.join(piped)} use Pipe mode, which this container reads on one host "
                        f"only; with instance_count > 1 use File or FastFile mode (input_mode='File')")
