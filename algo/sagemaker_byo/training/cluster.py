"""The cluster of a training job, as SageMaker describes it in resourceconfig.json.

Every host runs the same `train`. The hosts, the current host and the network interface come
from /opt/ml/input/config/resourceconfig.json; the leader is the first of `hosts` (SageMaker
lists them sorted; local mode names them `algo-1-xxxxx`, so no name is assumed). A host finds
every other by name, with bounded retries and back-off: names may resolve late, and neither
/etc/hostname nor /etc/hosts is to be trusted (SageMaker's guide). Under `ShardedByS3Key` each
host reads the files it was given; under `FullyReplicated` every host has every file, and each
reads its share (by size, the same split on every host).

A heterogeneous cluster (`instance_groups`) trains on one instance group, named by the
hyperparameter `instance_group` (default: the first group listed); the other groups' hosts
take no part and exit 0.
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
GROUP_HYPERPARAMETER = "instance_group"  # which instance group trains (heterogeneous clusters)
FIRST_RETRY, LONGEST_RETRY = 0.1, 5.0  # seconds between look-ups: doubling up to this


@dataclass(frozen=True)
class Plan:
    """Who is who in the job: `hosts` (those that train) in SageMaker's order, this host, and its
    network interface. `idle_reason` is set when this host is in an instance group that does not
    train (a heterogeneous cluster): it then takes no part, and the reason is what it logs."""

    hosts: tuple[str, ...]
    current: str
    interface: str | None = None
    group: str | None = None  # the instance group that trains, when resourceconfig.json has groups
    idle_reason: str | None = None

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


def plan(resource_config: dict[str, Any], group: str | None = None) -> Plan:
    """The plan of a resourceconfig.json (already read as a dict; empty: one host).

    With `instance_groups` (a heterogeneous cluster; SageMaker writes one group for a plain job
    too), the hosts of `group` train, by default those of the first group listed; a host of
    another group gets `idle_reason`. Without groups (local mode), `group` names nothing and is
    not checked.
    """
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
    interface = interface if isinstance(interface, str) and interface else None
    groups = _groups(resource_config, hosts)
    if not groups:
        return Plan(tuple(hosts), current, interface)
    chosen = group if group is not None else next(iter(groups))
    if chosen not in groups:
        raise UserError(f"hyperparameter {GROUP_HYPERPARAMETER}={chosen!r} names no instance group of this job; "
                        f"its groups are {', '.join(repr(g) for g in groups)}")
    members = groups[chosen]
    training = tuple(h for h in hosts if h in members)  # SageMaker's order (sorted), not the group's
    said = (f"named by hyperparameter {GROUP_HYPERPARAMETER}" if group is not None else
            f"the first group listed; hyperparameter {GROUP_HYPERPARAMETER} names another")
    own = next(name for name, names in groups.items() if current in names)
    stated = resource_config.get("current_group_name")
    if isinstance(stated, str) and stated and stated != own:
        raise UserError(f"resourceconfig.json: current_group_name is {stated!r}, but instance_groups lists "
                        f"current_host {current!r} in group {own!r}")
    if current in members:
        return Plan(training, current, interface, chosen)
    kind = resource_config.get("current_instance_type")
    reason = (f"host {current} is in instance group {own!r}" + (f" ({kind})" if isinstance(kind, str) else "")
              + f"; the job trains on instance group {chosen!r} ({', '.join(training)}), {said}: "
              f"this host does not train")
    return Plan(training, current, interface, chosen, reason)


def _groups(resource_config: dict[str, Any], hosts: list[str]) -> dict[str, list[str]]:
    """`instance_groups` as {name: hosts}, in the order listed, checked: every host in one group."""
    groups = resource_config.get("instance_groups")
    if groups is None or groups == []:
        return {}
    shape = "a list of objects with 'instance_group_name' and 'hosts'"
    if not isinstance(groups, list):
        raise UserError(f"resourceconfig.json: 'instance_groups' must be {shape}, not {groups!r}")
    found: dict[str, list[str]] = {}
    for entry in groups:
        name = entry.get("instance_group_name") if isinstance(entry, dict) else None
        members = entry.get("hosts") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or not isinstance(members, list) or not members:
            raise UserError(f"resourceconfig.json: 'instance_groups' must be {shape}; one entry is {entry!r}")
        if name in found:
            raise UserError(f"resourceconfig.json: instance group {name!r} is listed twice")
        found[name] = members
    placed: dict[str, str] = {}
    for name, members in found.items():
        for host in members:
            if host not in hosts:
                raise UserError(f"resourceconfig.json: instance group {name!r} lists {host!r}, which is not one "
                                f"of hosts {hosts}")
            if host in placed:
                raise UserError(f"resourceconfig.json: host {host!r} is in instance groups {placed[host]!r} "
                                f"and {name!r}")
            placed[host] = name
    unplaced = [h for h in hosts if h not in placed]
    if unplaced:
        raise UserError(f"resourceconfig.json: host(s) {', '.join(unplaced)} are in no instance group")
    return found


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
