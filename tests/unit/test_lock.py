"""The lock files agree with their inputs: each `requirements*.in` says what is asked for, the
`requirements*.txt` that `make lock` writes from it pins exactly that and what it pulls in, each
package with the hashes pip checks (the Dockerfile and `make venv` install with --require-hashes).
Read offline: an input edited without `make lock`, or a lock edited by hand, fails here.
"""

from __future__ import annotations

import pytest

from lockfiles import LOCKS, normalised, read_input, read_lock
from support import REPO

PAIRS = sorted(LOCKS.items())


def test_every_requirement_file_is_an_input_or_the_lock_of_one():
    inputs = sorted(path.name for path in REPO.glob("requirements*.in"))
    locks = sorted(path.name for path in REPO.glob("requirements*.txt"))
    assert inputs == sorted(LOCKS), "make lock resolves every requirements*.in: add the new one to the Makefile"
    assert locks == sorted(LOCKS.values())


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[target for _, target in PAIRS])
def test_the_lock_pins_every_package_its_input_asks_for_at_a_version_it_allows(source, target):
    lock = read_lock(REPO / target)
    requirements, _ = read_input(REPO / source)
    missing = [str(r) for r in requirements if normalised(r.name) not in lock.pins]
    assert not missing, f"in {source} but not in {target}: {missing}; run make lock"
    refused = [f"{r} (pinned {lock.pins[normalised(r.name)].version})" for r in requirements
               if not r.specifier.contains(lock.pins[normalised(r.name)].version, prereleases=True)]
    assert not refused, f"{target} pins versions {source} does not allow: {refused}; run make lock"


@pytest.mark.parametrize("target", sorted(LOCKS.values()))
def test_every_line_of_the_lock_pins_one_package_exactly_with_its_hashes(target):
    lock = read_lock(REPO / target)
    assert not lock.unreadable, "not an exact pin:\n" + "\n".join(lock.unreadable)
    unhashed = sorted(pin.name for pin in lock.pins.values() if not pin.hashes)
    assert lock.pins and not unhashed, f"{target}: pins without a hash: {unhashed}"


@pytest.mark.parametrize("target", sorted(LOCKS.values()))
def test_the_lock_names_no_package_index(target):
    """Where packages come from is pip's own configuration (the machine's, or the image's default)."""
    lock = read_lock(REPO / target)
    assert not lock.options, f"{target} carries pip options: {lock.options}"
    assert "://" not in (REPO / target).read_text()


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[target for _, target in PAIRS])
def test_every_package_in_the_lock_is_pulled_in_by_its_input(source, target):
    """What nothing asks for any more (a dependency a package dropped) leaves the lock with it."""
    lock = read_lock(REPO / target)
    asked = {f"-r {source}"}
    reached = {name for name, pin in lock.pins.items() if asked & set(pin.via)}
    grew = True
    while grew:
        more = {name for name, pin in lock.pins.items() if name not in reached and reached & set(pin.via)}
        reached |= more
        grew = bool(more)
    unreached = sorted(set(lock.pins) - reached)
    assert not unreached, f"{target} pins what {source} does not pull in: {unreached}; run make lock"
    requirements, _ = read_input(REPO / source)
    named = {normalised(r.name) for r in requirements}
    claimed = sorted(name for name, pin in lock.pins.items() if f"-r {source}" in pin.via and name not in named)
    assert not claimed, f"{target} says {source} asks for {claimed}, which it does not; run make lock"


def test_the_dev_lock_pins_what_it_shares_with_the_image_as_the_image_does():
    """`make venv` installs both locks together: the tests run the versions the image has."""
    runtime, dev = read_lock(REPO / "requirements.txt"), read_lock(REPO / "requirements-dev.txt")
    assert "-c requirements.txt" in read_input(REPO / "requirements-dev.in")[1]
    differ = [f"{name}: {runtime.pins[name].version} and {pin.version}" for name, pin in dev.pins.items()
              if name in runtime.pins and (pin.version, sorted(pin.hashes))
              != (runtime.pins[name].version, sorted(runtime.pins[name].hashes))]
    assert not differ, f"requirements.txt and requirements-dev.txt disagree: {differ}; run make lock"
