"""The share of the machine this container may use: CPUs and memory, read in one place.

With inference components several copies of a container share one instance, each limited by a
cgroup; classic endpoints and training jobs run under cgroup limits too. The figures come from,
in order of precedence: the CPU affinity mask and the cgroup CPU quota (v2 `cpu.max`, v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`), the smallest along the cgroup's path; for memory the
cgroup limit (v2 `memory.max`, v1 `memory.limit_in_bytes`), else the machine's RAM. Each figure
says where it came from, so `serve` and `train` can log it.

`SAGEMAKER_CGROUP_ROOT` (default /sys/fs/cgroup) and `SAGEMAKER_PROC_SELF_CGROUP` (default
/proc/self/cgroup) point elsewhere for tests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = "SAGEMAKER_CGROUP_ROOT"
PROC_SELF_CGROUP = "SAGEMAKER_PROC_SELF_CGROUP"
# A v1 "no limit" is a huge number (the largest page-aligned signed 64-bit value).
UNLIMITED_V1 = 1 << 60
GIB = 1024 ** 3

# Native thread pools a worker's numpy, scipy and scikit-learn size themselves from.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Figure:
    value: int
    source: str

    def __str__(self) -> str:
        return f"{self.value} ({self.source})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_dirs(env: dict[str, str]) -> list[tuple[int, Path]]:
    """(version, folder) of this process's cgroups, innermost first, up to the root."""
    root = Path(env.get(CGROUP_ROOT) or "/sys/fs/cgroup")
    text = _read(Path(env.get(PROC_SELF_CGROUP) or "/proc/self/cgroup")) or ""
    found: list[tuple[int, Path]] = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base, version = root, 2
        elif controllers:
            # v1: one hierarchy per controller set, mounted as e.g. /sys/fs/cgroup/cpu,cpuacct
            names = controllers.split(",")
            mount = next((root / c for c in (controllers, *names) if (root / c).is_dir()), None)
            if mount is None:
                continue
            base, version = mount, 1
        else:
            continue
        folder = base / path.lstrip("/")
        # Inside a container the namespace's root is the container's cgroup: walk up to `base`.
        while True:
            found.append((version, folder))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return found


def _quota_cpus(env: dict[str, str]) -> tuple[float, str] | None:
    best: tuple[float, str] | None = None
    for version, folder in _cgroup_dirs(env):
        if version == 2:
            raw = _read(folder / "cpu.max")
            if not raw:
                continue
            quota, _, period = raw.partition(" ")
            if quota == "max" or not period:
                continue
            cpus, where = int(quota) / int(period), f"cgroup v2 cpu.max {quota}/{period}"
        else:
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if not quota or not period or int(quota) <= 0:
                continue
            cpus, where = int(quota) / int(period), f"cgroup v1 cpu.cfs_quota_us {quota}/{period}"
        if best is None or cpus < best[0]:
            best = (cpus, where)
    return best


def cpus(env: dict[str, str] | None = None) -> Figure:
    """The CPUs this process may use: the affinity mask, capped by the cgroup quota (rounded up,
    so a quota of 1.5 CPUs gives 2 workers that share it)."""
    env = os.environ if env is None else env
    try:
        affinity = len(os.sched_getaffinity(0))
        figure = Figure(affinity, f"CPU affinity: {affinity} of {os.cpu_count()} CPUs")
    except AttributeError:  # not Linux
        figure = Figure(os.cpu_count() or 1, "os.cpu_count()")
    quota = _quota_cpus(env)
    if quota is not None and math.ceil(quota[0]) < figure.value:
        figure = Figure(max(1, math.ceil(quota[0])), f"{quota[1]} = {quota[0]:g} CPUs; {figure.source}")
    return figure


def memory(env: dict[str, str] | None = None) -> Figure:
    """The bytes of memory this container may use: the cgroup limit, else the machine's RAM."""
    env = os.environ if env is None else env
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    best = Figure(machine, "the machine's RAM; no cgroup memory limit")
    for version, folder in _cgroup_dirs(env):
        name = "memory.max" if version == 2 else "memory.limit_in_bytes"
        raw = _read(folder / name)
        if not raw or raw == "max" or not raw.isdigit() or int(raw) >= UNLIMITED_V1:
            continue
        if int(raw) < best.value:
            best = Figure(int(raw), f"cgroup v{version} {name}")
    return best


def threads_per_worker(cpu_count: int, workers: int) -> int:
    """Native threads per worker so that workers x threads does not exceed the CPUs."""
    return max(1, cpu_count // max(1, workers))


def limit_n_jobs(model, jobs: int) -> dict[str, int]:
    """Set every `n_jobs` of a scikit-learn model (nested ones too) that would use more than `jobs`
    threads (-1: all CPUs) to `jobs`; returns the values it replaced, by name, so they can be put
    back. Objects without scikit-learn's `get_params` are left alone."""
    get_params = getattr(model, "get_params", None)
    if get_params is None:
        return {}
    try:
        params = get_params(deep=True)
    except Exception:  # noqa: BLE001 - a model whose get_params fails keeps its settings
        return {}
    replaced = {name: value for name, value in params.items()
                if (name == "n_jobs" or name.endswith("__n_jobs")) and isinstance(value, int)
                and not isinstance(value, bool) and (value < 0 or value > jobs)}
    if replaced:
        model.set_params(**dict.fromkeys(replaced, jobs))
    return replaced


def describe_memory(figure: Figure) -> str:
    return f"{figure.value / GIB:.2f} GiB ({figure.source})"


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    return values


def memory_used(env: dict[str, str] | None = None) -> Figure:
    """The bytes in use where `memory()` found its limit: the cgroup's usage less its inactive file
    cache (the kernel drops that before it kills anything), else the machine's total less
    MemAvailable."""
    env = os.environ if env is None else env
    best: tuple[int, int, str] | None = None  # (limit, used, source)
    for version, folder in _cgroup_dirs(env):
        limit_name, usage_name, inactive = (("memory.max", "memory.current", "inactive_file") if version == 2 else
                                            ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
        limit, usage = _read(folder / limit_name), _read(folder / usage_name)
        if not limit or not limit.isdigit() or int(limit) >= UNLIMITED_V1 or not usage or not usage.isdigit():
            continue
        cache = 0
        for line in (_read(folder / "memory.stat") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == inactive and value.strip().isdigit():
                cache = int(value)
        if best is None or int(limit) < best[0]:
            best = (int(limit), max(0, int(usage) - cache), f"cgroup v{version} {usage_name} less {inactive}")
    if best is not None:
        return Figure(best[1], best[2])
    info = _meminfo()
    if "MemTotal" in info and "MemAvailable" in info:
        return Figure(info["MemTotal"] - info["MemAvailable"], "/proc/meminfo MemTotal less MemAvailable")
    return Figure(0, "unknown (no cgroup usage, no /proc/meminfo)")
