"""Training rows from an event log: the DuckDB and Spark builders against the pandas one, in CPU, wall time and memory.

    .venv/bin/python benchmarks/event_features.py [--leads 100000] [--workdir DIR] [--engines pandas duckdb spark]

The synthetic funnel of `--leads` leads is written once into `--workdir` (kept and reused). Each builder
runs in a fresh process of its own that reads the log and builds the training rows of the demo config
(`configs/demo.yaml`: its signals and snapshot schedule); the figures are the build's alone: CPU seconds
from `getrusage(RUSAGE_SELF)` (user + system, every thread, so DuckDB's too), wall seconds, and the
process's peak resident memory (`os.wait4`) beside its peak after reading the log. Ratios are against the
pandas builder measured in the same run.

`staged` is the build out of core (`leadscore.features.staged`): it reads the log itself, the activities a
million at a time, staged on disk, and DuckDB builds the rows within `--memory-limit`, `--part-leads` leads at
a time (default `staged.PART_LEADS`), written to a Parquet file batch by batch; its figures are the reading's
and the build's together (the others' exclude reading, given apart as `read`), and its peak is the whole
process's, beside its peak by the end of reading. The feature spec it builds (profile columns,
signals) is decided once beforehand in a process of its own, as training decides it, and not counted.

Spark (`--engines spark`, the default when PySpark is installed) runs in local mode on every core
(`--spark-master`), its session started before the clock starts (the start-up is printed apart). Its work is
in a Java process beside Python, so its CPU seconds add the JVM's (`psutil`, the bench extra) and its peak
memory is Python's peak plus the JVM's (`VmHWM`; an upper bound, the two peaks need not coincide). The
driver gets `--spark-driver-memory` (Spark's default, 1 GB, is too small for the collected rows of 100,000 leads).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lead_demo_config  # noqa: E402


def _config(folder: Path):
    from leadscore.config import parse_config

    return parse_config(lead_demo_config(folder), source="configs/demo.yaml")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jvm_processes() -> list:
    """The processes this one started (Spark's JVM in local mode)."""
    import psutil

    return psutil.Process().children(recursive=True)


def _jvm_cpu_seconds() -> float:
    total = 0.0
    for process in _jvm_processes():
        times = process.cpu_times()
        total += times.user + times.system
    return total


def _jvm_peak_mb() -> float:
    """The JVM's peak resident memory so far (Linux: VmHWM of /proc/<pid>/status)."""
    peak = 0.0
    for process in _jvm_processes():
        with open(f"/proc/{process.pid}/status") as status:
            peak += next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0) / 1024
    return peak


def _spark(master: str, driver_memory: str) -> float:
    """Start the Spark session the builder will pick up as the running one; the seconds it took."""
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    (SparkSession.builder.appName("leadscore event features benchmark").master(master)
     .config("spark.driver.memory", driver_memory).config("spark.ui.showConsoleProgress", "false").getOrCreate())
    return time.perf_counter() - started


def build(engine: str, folder: Path, master: str = "local[*]", driver_memory: str = "6g") -> dict:
    """Read the log and build its training rows with `engine`; what the build cost (run in a child)."""
    from leadscore.features.engines import TRAINING_ROWS
    from leadscore.features.events import EventLogLayout, after_export, export_time, feature_spec, load_event_log

    cfg = _config(folder)
    layout = EventLogLayout.from_config(cfg)
    read_cpu, read_wall = _cpu_seconds(), time.perf_counter()
    log = load_event_log(folder, layout)
    exported = export_time(log, layout, cfg.event_log.exported_at)
    log = after_export(log, layout, exported)
    spec = feature_spec(log, cfg, hidden=list(cfg.data.personal_columns))
    read_cpu, read_wall = _cpu_seconds() - read_cpu, time.perf_counter() - read_wall
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    on_spark = engine == "spark"
    start_s = _spark(master, driver_memory) if on_spark else 0.0
    jvm_cpu = _jvm_cpu_seconds() if on_spark else 0.0
    cpu, wall = _cpu_seconds(), time.perf_counter()
    rows = TRAINING_ROWS[engine](log, spec, cfg.event_log, exported)
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu + ((_jvm_cpu_seconds() - jvm_cpu) if on_spark else 0.0)
    return {"engine": engine, "cpu_s": cpu, "wall_s": wall, "loaded_mb": loaded_mb, "rows": len(rows),
            "activities": len(log.activities), "read_cpu_s": read_cpu, "read_wall_s": read_wall, "start_s": start_s, "jvm_peak_mb": _jvm_peak_mb() if on_spark else 0.0,
            "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spec_path(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.spec.pickle"


def decide_spec(folder: Path) -> None:
    """Decide the feature spec of the log as training does, reading the activities in chunks, and keep it."""
    import numpy as np

    from leadscore.features.events import (
        EventLogLayout,
        after_export,
        declared_export_time,
        export_time,
        feature_spec,
        load_event_log,
    )

    cfg = _config(folder)
    layout = EventLogLayout.from_config(cfg)
    exported_at = cfg.event_log.exported_at
    log = load_event_log(folder, layout, keep=lambda leads, _: np.zeros(len(leads), bool),
                         late_after=declared_export_time(exported_at))
    log = after_export(log, layout, export_time(log, layout, exported_at))
    _spec_path(folder).write_bytes(pickle.dumps(feature_spec(log, cfg, hidden=list(cfg.data.personal_columns))))


def build_staged(folder: Path, memory_limit: str, part_leads: int) -> dict:
    """Read the log a chunk at a time and build its training rows out of core into a Parquet file (run in a child)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from leadscore.features import staged
    from leadscore.features.events import after_export, declared_export_time, export_time

    cfg = _config(folder)
    spec = pickle.loads(_spec_path(folder).read_bytes())
    layout = spec.layout
    cpu, wall = _cpu_seconds(), time.perf_counter()
    rows, writer, out = 0, None, folder.parent / f"{folder.name}.rows.parquet"
    late_after = declared_export_time(cfg.event_log.exported_at)
    with staged.staged_event_log(folder, spec, late_after=late_after) as staged_log:
        exported = export_time(staged_log.log, layout, cfg.event_log.exported_at)
        after_export(staged_log.log, layout, exported)  # refuses late records, as training does
        activities = pq.ParquetFile(staged_log.activities).metadata.num_rows
        read_cpu, read_wall = _cpu_seconds() - cpu, time.perf_counter() - wall
        loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for batch in staged.training_rows(staged_log, spec, cfg.event_log, exported, 1_000_000,
                                          part_leads=part_leads, memory_limit=memory_limit):
            table = pa.Table.from_pandas(batch, preserve_index=False)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += len(batch)
    writer.close()
    out.unlink()
    return {"engine": "staged", "cpu_s": _cpu_seconds() - cpu, "wall_s": time.perf_counter() - wall,
            "read_cpu_s": read_cpu, "read_wall_s": read_wall, "loaded_mb": loaded_mb, "rows": rows,
            "activities": activities, "start_s": 0.0, "jvm_peak_mb": 0.0,
            "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(*argv) -> tuple[dict | None, float]:
    """Run this script with `argv` in a new process: its JSON answer (if any) and its peak memory in MB."""
    process = subprocess.Popen([sys.executable, __file__, *map(str, argv)], stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed")
    return (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), usage.ru_maxrss / 1024


def _default_engines() -> list[str]:
    """pandas and duckdb, and spark when PySpark is installed."""
    import importlib.util

    return ["pandas", "duckdb", "staged", *(["spark"] if importlib.util.find_spec("pyspark") else [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="keep the event log here between runs")
    parser.add_argument("--engines", nargs="+", default=_default_engines(), choices=["pandas", "duckdb", "staged", "spark"])
    parser.add_argument("--memory-limit", default="1GB", help="staged: DuckDB's memory limit")
    parser.add_argument("--part-leads", type=int, default=None, help="staged: leads per part of the query "
                        "(default: leadscore.features.staged.PART_LEADS)")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--spark-driver-memory", default="6g")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "leadscore-event-features"
    folder = workdir / f"funnel_{args.leads}"
    if args.generate:
        from leadscore.synthetic.funnel import generate_to_dir

        generate_to_dir(args.leads, 7, folder)
        return
    if args.spec:
        decide_spec(folder)
        return
    if args.child == "staged":
        from leadscore.features.staged import PART_LEADS

        print(json.dumps(build_staged(folder, args.memory_limit, args.part_leads or PART_LEADS)))
        return
    if args.child:
        print(json.dumps(build(args.child, folder, args.spark_master, args.spark_driver_memory)))
        return

    if not folder.exists():  # in a process of its own, so that this one stays small
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        _child("--generate", "--leads", args.leads, "--workdir", workdir)
        print(f"generated {args.leads:,} leads into {folder} in {time.perf_counter() - started:,.0f} s")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    results = {}
    if "staged" in args.engines and not _spec_path(folder).exists():
        _child("--spec", "--leads", args.leads, "--workdir", workdir)
    for engine in args.engines:
        run, peak_mb = _child("--child", engine, "--leads", args.leads, "--workdir", workdir,
                              "--spark-master", args.spark_master, "--spark-driver-memory", args.spark_driver_memory,
                              "--memory-limit", args.memory_limit,
                              *(["--part-leads", args.part_leads] if args.part_leads else []))
        if engine == "spark":  # Python's own peak (os.wait4 may count the JVM's already) plus the JVM's
            peak_mb = run["python_peak_mb"] + run["jvm_peak_mb"]
        results[engine] = {**run, "peak_mb": peak_mb}
        jvm = (f", of which the JVM {run['jvm_peak_mb']:,.0f} MB" if engine == "spark" else "")
        start = f"; session start {run['start_s']:,.1f} s, not counted" if engine == "spark" else ""
        loaded = (f"reading included ({run['read_cpu_s']:,.1f} CPU s, {run['read_wall_s']:,.1f} wall s of it, "
                  f"peak {run['loaded_mb']:,.0f} MB by its end)"
                  if engine == "staged" else f"{run['loaded_mb']:,.0f} MB after reading the log; read: "
                  f"{run['read_cpu_s']:,.1f} CPU s, {run['read_wall_s']:,.1f} wall s, not counted")
        print(f"{engine:>7}: {run['rows']:,} rows from {run['activities']:,} activities: {run['cpu_s']:,.1f} CPU s, "
              f"{run['wall_s']:,.1f} wall s; peak {peak_mb:,.0f} MB{jvm} ({loaded}{start})")
    if "pandas" in results:
        pandas = results["pandas"]
        for engine, other in results.items():
            if engine == "pandas":
                continue
            print(f"pandas / {engine}: CPU {pandas['cpu_s'] / other['cpu_s']:.1f}x, "
                  f"wall {pandas['wall_s'] / other['wall_s']:.1f}x, "
                  f"peak memory {pandas['peak_mb'] / other['peak_mb']:.1f}x, memory above the loaded log "
                  f"{(pandas['peak_mb'] - pandas['loaded_mb']) / max(other['peak_mb'] - other['loaded_mb'], 1):.1f}x")
        if "staged" in results:  # staged reads the log itself: against pandas' reading and build together
            staged_run = results["staged"]
            print(f"pandas read + build / staged: CPU "
                  f"{(pandas['cpu_s'] + pandas['read_cpu_s']) / staged_run['cpu_s']:.1f}x, wall "
                  f"{(pandas['wall_s'] + pandas['read_wall_s']) / staged_run['wall_s']:.1f}x")


if __name__ == "__main__":
    main()
