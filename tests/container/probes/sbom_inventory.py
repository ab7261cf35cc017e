# What the image holds, read inside it: its SBOM, every Python distribution the image's Python sees
# (/opt/venv), and every Debian package dpkg has installed. Printed as one JSON line.
import importlib.metadata
import json
import subprocess
from pathlib import Path

status = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"],
                        capture_output=True, text=True, check=True).stdout
print(json.dumps({
    "sbom": json.loads(Path("/opt/sbom/sbom.cdx.json").read_text()),
    "python": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
    "debian": [line.split("\t")[1:] for line in status.splitlines() if line.startswith("ii")],
    "others": [line for line in status.splitlines() if not line.startswith("ii")],
    "os_release": dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().split("\n") if "=" in line),
    "generators_left": [str(p) for p in (Path("/opt/sbom-tools"),) if p.exists()],
}))
