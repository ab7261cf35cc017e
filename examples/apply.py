#!/usr/bin/env python3
"""Apply an example to a copy of the repository, as its README says: `python3 examples/apply.py knn`.

What an example changes is written in `examples/<name>/fork.json` (the format is in
examples/README.md): repository paths to remove, example files to copy over repository paths,
and example files whose lines are appended to repository files. The standard library only, so it
runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
KEYS = {"description", "remove", "copy", "append", "tiers"}
TIERS = ("tests/unit", "tests/integration", "tests/reliability")  # the plumbing tiers, by default


def describe(name: str) -> dict:
    """The example's fork.json, checked: unknown keys and paths outside the repository are errors."""
    path = EXAMPLES / name / "fork.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: every example describes what it changes in fork.json")
    spec = json.loads(path.read_text())
    unknown = set(spec) - KEYS
    if unknown:
        raise SystemExit(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
    for target in [*spec.get("remove", []), *spec.get("copy", {}).values(), *spec.get("append", {}).values()]:
        if Path(target).is_absolute() or ".." in Path(target).parts:
            raise SystemExit(f"{path}: {target!r} is not a path inside the repository")
    for source in [*spec.get("copy", {}), *spec.get("append", {})]:
        if not (EXAMPLES / name / source).exists():
            raise SystemExit(f"{path}: {source!r} is not a file of examples/{name}/")
    spec.setdefault("tiers", list(TIERS))
    return spec


def apply(name: str, repo: Path) -> None:
    """Change the repository at `repo` as the example says: remove, then copy, then append."""
    spec = describe(name)
    here = EXAMPLES / name
    for pattern in spec.get("remove", []):
        for match in sorted(glob.glob(str(repo / pattern))):
            shutil.rmtree(match) if Path(match).is_dir() else Path(match).unlink()
    for source, target in spec.get("copy", {}).items():
        destination = repo / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if (here / source).is_dir():
            shutil.copytree(here / source, destination, dirs_exist_ok=True)
        else:
            shutil.copy(here / source, destination)
    for source, target in spec.get("append", {}).items():
        destination = repo / target
        text = destination.read_text() if destination.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        destination.write_text(text + (here / source).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the example's folder under examples/")
    parser.add_argument("repo", nargs="?", type=Path, default=EXAMPLES.parent,
                        help="the repository to change (default: this one)")
    parser.add_argument("--tiers", action="store_true",
                        help="print the test paths CI runs for this example, one a line, and change nothing")
    arguments = parser.parse_args()
    if arguments.tiers:
        print("\n".join(describe(arguments.name)["tiers"]))
        return
    apply(arguments.name, arguments.repo.resolve())
    print(f"applied examples/{arguments.name} to {arguments.repo}", file=sys.stderr)


if __name__ == "__main__":
    main()
