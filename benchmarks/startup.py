"""Start-up cost of `gemner predict --text`: cold and warm, with and without a reranked entity.

Each case runs the command in a fresh Python process and reports its wall time as a ratio to
`python -c "import torch"` measured in the same run (so a loaded machine shifts both), and the
process's peak resident memory (VmHWM, read by the process itself at exit: the peak of that process
only, not of this one).

* cold: an empty conversion cache (a temporary `$GEMNER_CACHE`), the state of a first run;
* warm: the same cache after the cold runs (the GGUF reranker base already converted);
* no-cache: `GEMNER_CONVERT_GGUF=0`, every start de-quantises the GGUF (how it was before the cache).

    python benchmarks/startup.py                 # the lite-rerank preset, one run per case
    python benchmarks/startup.py --repeats 3 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EASY_TEXT = "Ted Cruz speaks in Texas"  # entropies 0.07 and 0.21: below the lite-rerank gamma (1.2)
HARD_TEXT = "Mercury and Venus"  # entropies 2.09 and 2.14 with the shipped recogniser: both reranked

# Runs a module as `python -m` would, then writes the process's own peak RSS (kB) at exit.
_LAUNCHER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    with open(os.environ["STARTUP_PEAK_FILE"], "w") as f:
        f.write(str(kb))
atexit.register(_peak)
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_child(args: list[str], env: dict[str, str]) -> dict[str, object]:
    """Wall seconds, peak RSS (MB) and stdout of `python -m <args>`."""
    with tempfile.NamedTemporaryFile(suffix=".peak", delete=False) as peak_file:
        peak_path = Path(peak_file.name)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *args], env={**env, "STARTUP_PEAK_FILE": str(peak_path)},
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    peak = peak_path.read_text().strip()
    peak_path.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"seconds": seconds, "peak_mb": int(peak) / 1024 if peak else None, "stdout": done.stdout}


def reranked_entities(stdout: str) -> int:
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return sum("rerank" in e.get("scores", {}) for r in records for e in r.get("entities", []))


def measure(cases: list[tuple[str, str, dict[str, str]]], repeats: int, base_env: dict[str, str],
            config: str) -> list[dict[str, object]]:
    rows = []
    for name, text, extra in cases:
        runs = []
        for repeat in range(repeats):
            env = {**base_env, **extra}
            if name.startswith("cold") and not (repeat == 0 and text == HARD_TEXT):
                env["GEMNER_CACHE"] = tempfile.mkdtemp(prefix="gemner-cold-")  # else: fills the warm cache
            runs.append(run_child(["gemner", "predict", "--config", config, "--text", text, "--no-progress"], env))
        rows.append({"case": name, "text": text, "seconds": statistics.median(r["seconds"] for r in runs),
                     "peak_mb": max(r["peak_mb"] or 0 for r in runs),
                     "reranked": reranked_entities(str(runs[-1]["stdout"]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="lite-rerank")  # `lite` reranks nothing
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-cache-case", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the reranked case with the conversion cache off (slow)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    warm_cache = tempfile.mkdtemp(prefix="gemner-warm-")
    base_env = {**os.environ, "GEMNER_CACHE": warm_cache}
    torch_runs = [run_child(["timeit", "-n", "1", "-r", "1", "import torch"], base_env) for _ in range(3)]
    torch_seconds = statistics.median(r["seconds"] for r in torch_runs)
    cases = [("cold, no hard entity", EASY_TEXT, {}), ("cold, reranked", HARD_TEXT, {}),
             ("warm, no hard entity", EASY_TEXT, {}), ("warm, reranked", HARD_TEXT, {})]
    if args.no_cache_case:
        cases.append(("no cache, reranked", HARD_TEXT, {"GEMNER_CONVERT_GGUF": "0"}))
    rows = measure(cases, args.repeats, base_env, args.config)
    load = os.getloadavg()
    print(f"import torch: {torch_seconds:.2f} s (median of 3); load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'case':28} {'seconds':>8} {'x torch':>8} {'peak MB':>8} {'reranked':>8}")
    for row in rows:
        print(f"{row['case']:28} {row['seconds']:8.1f} {row['seconds'] / torch_seconds:8.1f} "
              f"{row['peak_mb']:8.0f} {row['reranked']:8d}")
    if args.json:
        args.json.write_text(json.dumps({"import_torch_seconds": torch_seconds, "load_average": load,
                                         "cpus": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
