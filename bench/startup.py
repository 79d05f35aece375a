"""Start-up: `circ compile` and a spec error under `circ check`, against importing the
front end's own libraries.

    python bench/startup.py [--repeat 7] [--tree PATH]

Three commands, each a fresh process, timed wall-clock from spawn to exit with its peak
RSS (`os.wait4`):

* floor: ``python -c "import lark, networkx"``;
* ``circ compile specs/inceptionv1/curve_circuit.circ`` (a spec with activation claims);
* ``circ check`` on a copy of that spec with a syntax error (the diagnostic, exit 2).

The machine is shared by other engineers: each figure is the minimum over `--repeat`
runs, the three commands interleaved. `--tree` times another checkout (e.g. main).
Prints the figures and the ratios to the floor (target <= 2x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = "specs/inceptionv1/curve_circuit.circ"


def _time(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, peak RSS bytes, exit status) of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.stderr is not None:
        p.stderr.close()
    return wall, int(usage.ru_maxrss) * 1024, p.returncode


def main() -> None:
    """Print the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tree", type=Path, default=ROOT)
    args = ap.parse_args()
    tree = args.tree.resolve()
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    bad = Path(tempfile.mkdtemp()) / "typo.circ"
    text = (tree / SPEC).read_text(encoding="utf-8")
    bad.write_text(text.replace("feature", "featur", 1), encoding="utf-8")
    py = sys.executable
    cmds = {
        "import lark, networkx": [py, "-c", "import lark, networkx"],
        "circ compile": [py, "-m", "circuitdsl", "compile", SPEC],
        "circ check (syntax error)": [py, "-m", "circuitdsl", "check", str(bad)],
    }
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.repeat):
        for name, cmd in cmds.items():
            wall, rss, rc = _time(cmd, tree, env)
            old = best.get(name)
            best[name] = (min(wall, old[0]) if old else wall, min(rss, old[1]) if old else rss, rc)
    floor_t, floor_m, _ = best["import lark, networkx"]
    print(f"start-up, {tree}, min of {args.repeat} runs (shared machine)")
    for name, (wall, rss, rc) in best.items():
        print(
            f"{name:<26} {wall * 1000:7.0f} ms  {rss / 2**20:6.0f} MiB  exit {rc}"
            f"   x{wall / floor_t:4.2f} time  x{rss / floor_m:4.2f} memory"
        )
    print("target: <= 2x the floor's time")


if __name__ == "__main__":
    main()
