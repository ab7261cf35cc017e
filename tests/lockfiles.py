"""The requirement files as the tests read them, without pip or a network: each input
(`requirements*.in`, the packages asked for) and the lock `make lock` writes from it
(`requirements*.txt`: every package pinned with its hashes, and `# via` naming what pulled it in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from support import REPO

# The inputs and the locks written from them, as `make lock` pairs them.
LOCKS = {name: name.removesuffix(".in") + ".txt"
         for name in ("requirements.in", "requirements-dev.in", "requirements-aws.in", "requirements-aws3.in",
                     "requirements-sbom.in")}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(?P<version>[A-Za-z0-9.+!-]+)$")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str  # normalised
    version: str
    line: int
    hashes: list[str] = field(default_factory=list)
    # What pulled it in: normalised package names, and `-r FILE` / `-c FILE` for the input files.
    via: list[str] = field(default_factory=list)


@dataclass
class Lock:
    path: Path
    pins: dict[str, Pin]
    options: list[str]  # lines that are pip options, not requirements (an index URL would be one)
    unreadable: list[str]  # requirement lines that are not `name==version`


def logical_lines(path: Path):
    """(line number, text) with backslash continuations joined, as pip reads them."""
    pending, start = "", 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def read_lock(path: Path) -> Lock:
    lock = Lock(path, {}, [], [])
    current: Pin | None = None
    in_via = False
    for number, line in logical_lines(path):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            comment = text.lstrip("#").strip()
            if current is not None and comment.startswith("via"):
                in_via = True
                named = comment.removeprefix("via").strip()
                if named:
                    current.via.append(named)
            elif current is not None and in_via and line.startswith("    #   "):
                current.via.append(comment)
            else:
                in_via = False
            continue
        in_via = False
        if text.startswith("-"):
            lock.options.append(text)
            current = None
            continue
        requirement = text.split(" #", 1)[0]
        hashes = HASH.findall(requirement)
        match = PIN.match(HASH.sub("", requirement).split(";", 1)[0].strip())
        if match is None:
            lock.unreadable.append(f"{path.name}:{number}: {text}")
            current = None
            continue
        current = Pin(normalised(match["name"]), match["version"], number, hashes)
        lock.pins[current.name] = current
    for pin in lock.pins.values():
        pin.via = [entry if entry.startswith("-") else normalised(entry) for entry in pin.via]
    return lock


def read_input(path: Path) -> tuple[list[Requirement], list[str]]:
    """The requirements an input asks for, and its `-r`/`-c` lines."""
    requirements, options = [], []
    for _, line in logical_lines(path):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith("-"):
            options.append(text)
        else:
            requirements.append(Requirement(text))
    return requirements, options


def repository_lock(name: str = "requirements.txt") -> Lock:
    return read_lock(REPO / name)
