"""Training rows from an event log: the DuckDB builder against the pandas one, in CPU, wall time and memory.

    .venv/bin/python benchmarks/event_features.py [--leads 100000] [--workdir DIR] [--engines pandas duckdb]

The synthetic funnel of `--leads` leads is written once into `--workdir` (kept and reused). Each builder
runs in a fresh process of its own that reads the log and builds the training rows of the demo config
(`configs/demo.yaml`: its signals and snapshot schedule); the figures are the build's alone: CPU seconds
from `getrusage(RUSAGE_SELF)` (user + system, every thread, so DuckDB's too), wall seconds, and the
process's peak resident memory (`os.wait4`) beside its peak after reading the log.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _config(folder: Path):
    import yaml

    from leadscore.config import parse_config

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(folder)
    return parse_config(raw, source="configs/demo.yaml")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build(engine: str, folder: Path) -> dict:
    """Read the log and build its training rows with `engine`; what the build cost (run in a child)."""
    from leadscore.features.engines import TRAINING_ROWS
    from leadscore.features.events import EventLogLayout, after_export, export_time, feature_spec, load_event_log

    cfg = _config(folder)
    layout = EventLogLayout.from_config(cfg)
    log = load_event_log(folder, layout)
    exported = export_time(log, layout, cfg.event_log.exported_at)
    log = after_export(log, layout, exported)
    spec = feature_spec(log, cfg, hidden=list(cfg.data.personal_columns))
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = _cpu_seconds(), time.perf_counter()
    rows = TRAINING_ROWS[engine](log, spec, cfg.event_log, exported)
    return {"engine": engine, "cpu_s": _cpu_seconds() - cpu, "wall_s": time.perf_counter() - wall,
            "loaded_mb": loaded_mb, "rows": len(rows), "activities": len(log.activities)}


def _child(*argv) -> tuple[dict | None, float]:
    """Run this script with `argv` in a new process: its JSON answer (if any) and its peak memory in MB."""
    process = subprocess.Popen([sys.executable, __file__, *map(str, argv)], stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed")
    return (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="keep the event log here between runs")
    parser.add_argument("--engines", nargs="+", default=["pandas", "duckdb"], choices=["pandas", "duckdb"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "leadscore-event-features"
    folder = workdir / f"funnel_{args.leads}"
    if args.generate:
        from leadscore.synthetic.funnel import generate_to_dir

        generate_to_dir(args.leads, 7, folder)
        return
    if args.child:
        print(json.dumps(build(args.child, folder)))
        return

    if not folder.exists():  # in a process of its own, so that this one stays small
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        _child("--generate", "--leads", args.leads, "--workdir", workdir)
        print(f"generated {args.leads:,} leads into {folder} in {time.perf_counter() - started:,.0f} s")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    results = {}
    for engine in args.engines:
        run, peak_mb = _child("--child", engine, "--leads", args.leads, "--workdir", workdir)
        results[engine] = {**run, "peak_mb": peak_mb}
        print(f"{engine:>7}: {run['rows']:,} rows from {run['activities']:,} activities: {run['cpu_s']:,.1f} CPU s, "
              f"{run['wall_s']:,.1f} wall s; peak {peak_mb:,.0f} MB ({run['loaded_mb']:,.0f} MB after reading the log)")
    if {"pandas", "duckdb"} <= set(results):
        pandas, duckdb = results["pandas"], results["duckdb"]
        print(f"pandas / duckdb: CPU {pandas['cpu_s'] / duckdb['cpu_s']:.1f}x, "
              f"wall {pandas['wall_s'] / duckdb['wall_s']:.1f}x, "
              f"peak memory {pandas['peak_mb'] / duckdb['peak_mb']:.1f}x, memory above the loaded log "
              f"{(pandas['peak_mb'] - pandas['loaded_mb']) / max(duckdb['peak_mb'] - duckdb['loaded_mb'], 1):.1f}x")


if __name__ == "__main__":
    main()
