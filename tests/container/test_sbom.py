"""The image's SBOM (/opt/sbom/sbom.cdx.json, CycloneDX JSON written during the build): it lists
every package the image holds, Python and Debian, with its version, the Python ones with the
SHA-256 of the wheel installed, and nothing else; `make sbom` copies it out.

Needs a Docker engine; the image is test_image.py's.
"""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import parse_qs

import pytest
from test_image import docker, image, run_probe  # noqa: F401 - the fixture

from lockfiles import normalised, repository_lock
from support import REPO


@pytest.fixture(scope="module")
def inventory(image) -> dict:  # noqa: F811 - the fixture
    return run_probe(image, "sbom_inventory.py")


def components(sbom: dict, purl_type: str) -> list[dict]:
    return [c for c in sbom["components"] if c.get("purl", "").startswith(f"pkg:{purl_type}/")]


def qualifiers(purl: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(purl.partition("?")[2]).items()}


def test_the_sbom_is_cyclonedx_describing_the_image(inventory):
    sbom = inventory["sbom"]
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["component"]["type"] == "container"
    assert {tool["name"] for tool in sbom["metadata"]["tools"]["components"]} >= {"cyclonedx-py", "distro2sbom"}
    refs = [c["bom-ref"] for c in sbom["components"]]
    assert len(refs) == len(set(refs)), "bom-refs repeat"


def test_every_python_distribution_in_the_image_is_in_the_sbom_with_its_version_and_nothing_else(inventory):
    listed = {normalised(c["name"]): c["version"] for c in components(inventory["sbom"], "pypi")}
    assert listed and listed == {normalised(name): version for name, version in inventory["python"].items()}
    for component in components(inventory["sbom"], "pypi"):
        assert component["purl"].startswith(f"pkg:pypi/{normalised(component['name'])}@{component['version']}")


def test_every_python_component_has_the_sha256_of_a_wheel_the_lock_allows(inventory):
    """The hash is that of the wheel pip installed, so it is one of the lock's hashes for that version."""
    pins = repository_lock().pins
    for component in components(inventory["sbom"], "pypi"):
        pin = pins[normalised(component["name"])]
        assert component["version"] == pin.version
        hashes = [h["content"] for h in component.get("hashes", []) if h["alg"] == "SHA-256"]
        assert len(hashes) == 1 and hashes[0] in pin.hashes, (component["name"], hashes)


def test_every_debian_package_in_the_image_is_in_the_sbom_with_its_version_and_nothing_else(inventory):
    assert not inventory["others"], "packages dpkg knows but has not installed"
    release = inventory["os_release"]["VERSION_CODENAME"]
    listed = set()
    for component in components(inventory["sbom"], "deb"):
        found = qualifiers(component["purl"])
        assert found["distro"] == release, component["purl"]
        assert component["purl"].startswith(f"pkg:deb/debian/{component['name']}@"), component["purl"]
        listed.add((component["name"], component["version"], found["arch"]))
    assert listed and listed == {tuple(package) for package in inventory["debian"]}


def test_the_sbom_holds_only_the_packages_and_the_operating_system(inventory):
    sbom = inventory["sbom"]
    others = [c for c in sbom["components"] if not c.get("purl", "").startswith(("pkg:pypi/", "pkg:deb/"))]
    assert [(c["type"], c["name"], c["version"]) for c in others] == [
        ("operating-system", "debian-gnu/linux", inventory["os_release"]["VERSION_ID"].strip('"'))]


def test_the_sbom_generators_are_not_in_the_image(inventory):
    assert inventory["generators_left"] == []
    assert not {"cyclonedx-bom", "cyclonedx-python-lib", "distro2sbom", "lib4sbom"} & {
        normalised(name) for name in inventory["python"]}


def test_make_sbom_writes_the_images_sbom_out(image, inventory, tmp_path):  # noqa: F811 - the fixture
    result = subprocess.run(["make", "-f", str(REPO / "Makefile"), "sbom", f"IMAGE={image}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "sbom.cdx.json").read_text()) == inventory["sbom"]
    assert not re.search(r"\.tmp$", "\n".join(p.name for p in tmp_path.iterdir()))
