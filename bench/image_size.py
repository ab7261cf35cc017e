"""What takes the space in the image: its size, its layers, the largest packages and libraries.

For each image: `docker image inspect` (the size), `docker history` (the size of each layer and
the instruction that made it), and, from inside a container of it, the largest folders of the
virtual environment's site-packages, the largest shared libraries anywhere, and the space of the
kinds of file a trim could touch (test suites, bytecode, shared libraries, pip and setuptools).

    python bench/image_size.py [--image IMAGE ...] [--out bench/results/image.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Runs inside the image, with its own Python: sizes in bytes, as JSON on stdout.
PROBE = r'''
import json, os, sys, sysconfig
from pathlib import Path

def size(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total

site = Path(sysconfig.get_paths()["purelib"])
top = sorted(((size(p) if p.is_dir() else p.stat().st_size, p.name) for p in site.iterdir()), reverse=True)
libraries, elsewhere = [], 0
kinds = {"tests": 0, "bytecode": 0, "bytecode_outside_tests": 0, "shared_libraries": 0, "python_sources": 0}
for root in ("/opt", "/usr"):
    for dirpath, dirs, files in os.walk(root):
        in_tests = "/tests/" in dirpath + "/" or "/test/" in dirpath + "/"
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            n = os.lstat(p).st_size
            library = name.endswith(".so") or ".so." in name
            if library:
                libraries.append((n, p))
            if not dirpath.startswith(str(site)):
                elsewhere += n if library else 0
            else:
                kinds["shared_libraries"] += n if library else 0
                if in_tests:
                    kinds["tests"] += n
                if name.endswith(".pyc"):
                    kinds["bytecode"] += n
                    kinds["bytecode_outside_tests"] += 0 if in_tests else n
                if name.endswith(".py"):
                    kinds["python_sources"] += n
print(json.dumps({
    "python": sys.version.split()[0],
    "site_packages": str(site),
    "site_packages_bytes": size(site),
    "largest_in_site_packages": [{"name": name, "bytes": n} for n, name in top[:15]],
    "largest_shared_libraries": [{"path": p, "bytes": n} for n, p in sorted(libraries, reverse=True)[:15]],
    "site_packages_by_kind_bytes": kinds,
    "shared_libraries_outside_site_packages_bytes": elsewhere,
    "pip_setuptools_present": sorted(p.name for p in site.iterdir()
                                     if p.name.split("-")[0] in ("pip", "setuptools", "pkg_resources")),
    "folders_bytes": {d: size(d) for d in ("/opt/venv", "/opt/program", "/usr/lib/python3.11",
                                           "/usr/lib/x86_64-linux-gnu", "/usr/share")},
}))
'''


def docker(*args: str, timeout: float = 300) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True).stdout


def describe(image: str) -> dict:
    history = []
    for line in docker("history", "--no-trunc", "--format", "{{json .}}", image).splitlines():
        layer = json.loads(line)
        history.append({"size": layer["Size"], "created_by": " ".join(layer["CreatedBy"].split())[:160]})
    inside = json.loads(docker("run", "--rm", "--network", "host", "--entrypoint", "python", image,
                               "-c", PROBE))
    return {"size_bytes": int(docker("image", "inspect", "--format", "{{.Size}}", image)),
            "layers": history, **inside}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append", help="repeat to compare; default sagemaker-byo:slim")
    parser.add_argument("--out", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    images = args.image or ["sagemaker-byo:slim"]
    result = {"command": "python bench/image_size.py " + " ".join(sys.argv[1:]),
              "images": {image: describe(image) for image in images}}
    for image, found in result["images"].items():
        print(f"{image}: {found['size_bytes'] / 1e6:.0f} MB; "
              f"site-packages {found['site_packages_bytes'] / 1e6:.0f} MB, "
              + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in found["site_packages_by_kind_bytes"].items()))
        for layer in found["layers"]:
            print(f"    {layer['size']:>8}  {layer['created_by'][:100]}")
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
