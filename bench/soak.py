"""Soak: the real serve stack at saturation for a bounded time, with errors and memory recorded.

wrk runs for DURATION seconds (default 300) against /invocations with a 1-row CSV at 4
connections, while the server's proportional set size (PSS, all its processes) is sampled every
10 seconds. Passes when wrk saw no errors and PSS grew by at most 5 % after the first minute.

    python bench/soak.py [--duration 300] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ALGO, PATH, REPO, WRK_SCRIPT, free_port, pss_mb, wait_ping  # noqa: E402

SAMPLE_EVERY = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    base = work / "ml"
    shutil.copytree(REPO / "local_test" / "test_dir", base, ignore=shutil.ignore_patterns(".gitkeep"))
    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base), "MODEL_SERVER_WORKERS": "2"}
    subprocess.run([str(ALGO / "train")], env=env, check=True, capture_output=True, timeout=300)
    payload = work / "payload.csv"
    payload.write_text("5.1,3.5,1.4,0.2\n")
    script = work / "soak.lua"
    script.write_text(WRK_SCRIPT.format(payload=payload))
    port = free_port()
    server = subprocess.Popen([str(ALGO / "serve")], env={**env, "SAGEMAKER_BIND_TO_PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    samples = []
    try:
        wait_ping(f"http://127.0.0.1:{port}", server)
        load = subprocess.Popen(["wrk", "-t", "2", "-c", "4", "-d", f"{args.duration}s", "-s", str(script),
                                 f"http://127.0.0.1:{port}/invocations"], stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        while load.poll() is None and time.monotonic() - started < args.duration + 30:
            samples.append({"t_s": round(time.monotonic() - started), "pss_mb": round(pss_mb(server.pid), 1)})
            time.sleep(SAMPLE_EVERY)
        out = load.communicate(timeout=60)[0]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    after_minute = [s["pss_mb"] for s in samples if s["t_s"] >= 60]
    growth = (max(after_minute) - after_minute[0]) / after_minute[0] if len(after_minute) > 1 else 0.0
    result = {
        "command": "python bench/soak.py " + " ".join(sys.argv[1:]),
        "duration_s": args.duration, "connections": 4, "requests": requests_done,
        "rps": round(requests_done / args.duration), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "pss_growth_after_first_minute": round(growth, 4), "samples": samples,
    }
    result["passed"] = result["non_2xx"] == 0 and not result["socket_errors"] and growth <= 0.05
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
