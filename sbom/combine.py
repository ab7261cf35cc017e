"""One CycloneDX SBOM of the image from what the build's generators wrote: cyclonedx-py's of the
Python environment, distro2sbom's of the Debian packages, and pip's installation report (the
SHA-256 of each wheel pip installed, checked against requirements.txt's hashes as it installed).

Run by the Dockerfile's `sbom` stage with the generators' own Python (docs/deploying.md):
    python combine.py PYTHON_BOM DEBIAN_BOM PIP_REPORT IMAGE_NAME OUTPUT
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

SPEC_VERSION = "1.6"  # what cyclonedx-py writes by default, and scanners read (Inspector, Trivy)
IMAGE_REF = "image"


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_hashes(report: dict) -> dict[str, str]:
    """Package name -> SHA-256 of the wheel pip installed it from."""
    hashes = {}
    for item in report["install"]:
        archive = item["download_info"]["archive_info"]
        digest = archive.get("hashes", {}).get("sha256") or archive["hash"].removeprefix("sha256=")
        hashes[normalised(item["metadata"]["name"])] = digest
    return hashes


def combine(python_bom: dict, debian_bom: dict, report: dict, image_name: str) -> dict:
    hashes = wheel_hashes(report)
    python = python_bom["components"]
    unhashed = [c["name"] for c in python if normalised(c["name"]) not in hashes]
    if unhashed:  # installed by something other than the locked install: the SBOM cannot vouch for it
        raise SystemExit(f"combine.py: no wheel hash in pip's report for {unhashed}")
    for component in python:
        component["hashes"] = [{"alg": "SHA-256", "content": hashes[normalised(component["name"])]}]

    debian_root = debian_bom["metadata"]["component"]["bom-ref"]
    debian = debian_bom["components"]
    python_deps = python_bom.get("dependencies", [])
    depended_on = {ref for dep in python_deps for ref in dep.get("dependsOn", [])}
    top = [c["bom-ref"] for c in python if c["bom-ref"] not in depended_on]
    debian_top = [ref for dep in debian_bom.get("dependencies", []) if dep["ref"] == debian_root
                  for ref in dep.get("dependsOn", [])]
    tools = python_bom["metadata"]["tools"]["components"] + debian_bom["metadata"]["tools"]["components"]
    return {
        "$schema": f"http://cyclonedx.org/schema/bom-{SPEC_VERSION}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": tools},
            "component": {"type": "container", "bom-ref": IMAGE_REF, "name": image_name},
        },
        "components": python + debian,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": sorted(top) + debian_top}]
                        + python_deps
                        + [dep for dep in debian_bom.get("dependencies", []) if dep["ref"] != debian_root],
    }


def main(python_path: str, debian_path: str, report_path: str, image_name: str, output: str) -> None:
    bom = combine(*(json.loads(Path(path).read_text()) for path in (python_path, debian_path, report_path)),
                  image_name)
    text = json.dumps(bom, indent=1, sort_keys=True)
    error = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(text)
    if error:
        raise SystemExit(f"combine.py: the SBOM is not valid CycloneDX {SPEC_VERSION}: {error}")
    Path(output).write_text(text + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
