"""``harness run`` (an experiment end to end), ``harness worker`` (join one), ``harness list``, ``status``."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import parse_set
from harness.commands.progress import cells, watch
from harness.engine import status as st
from harness.engine.spec import SPEC_DIR, load_spec, read_toml
from harness.engine.tracking import pick_mode
from harness.errors import UserError
from harness.options import (
    GraceOpt,
    HeartbeatOpt,
    IndexOpt,
    ReportsOpt,
    SetOpt,
    SpecPresetOpt,
    StorageOpt,
    StoreOpt,
    WandbOpt,
)

app = typer.Typer()

NameArg = Annotated[
    str, typer.Argument(help="Spec name in experiments/ (e.g. ablate-pool) or a path to a .toml.")
]


@app.command()
def run(
    name: NameArg,
    preset: SpecPresetOpt = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Use seeds 0..N-1 instead of the spec's.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Local worker processes (cores are split).")
    ] = 1,
    data: Annotated[
        str | None, typer.Option("--data", help="Override the spec's data set (folder or synth:TASK).")
    ] = None,
    set_: SetOpt = None,
    primary: Annotated[
        str | None, typer.Option("--primary", help="Metric the verdicts are on (default: the spec's).")
    ] = None,
    secondary: Annotated[
        list[str] | None,
        typer.Option(
            "--secondary", metavar="METRIC", help="Secondary metric, repeatable (replaces the spec's)."
        ),
    ] = None,
    wandb: WandbOpt = "auto",
    storage: StorageOpt = None,
    store: StoreOpt = Path("runs"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and an estimate; write nothing.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Retry runs that used up their retries.")
    ] = False,
    reports: ReportsOpt = Path("reports"),
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip building the report at the end.")
    ] = False,
) -> None:
    """Train every arm x seed of an experiment (run it again to resume), then build its report."""
    from harness.engine import runner
    from harness.engine.worker import Ablation, WorkerOptions, work

    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's banners would bury the progress lines
    options = runner.RunOptions(store, workers, storage, pick_mode(wandb), retry_failed, True, reports)
    plan = runner.plan_from_args(name, store, preset, seeds, data, parse_set(set_), primary, secondary)
    if dry_run:
        _print_plan(plan, workers)
        return
    runner.check_data(plan)
    command = "harness run " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["run"] else f"harness run {name}"
    queue, state = runner.prepare(plan, options, command)
    _say(
        f"{plan.spec.name}: {len(plan.units)} runs ({len(plan.spec.arms)} arms x {len(plan.seeds)} seeds): "
        f"{len(state['done'])} done, {len(state['queued'])} to run, {len(state['running'])} running, "
        f"{len(state['failed'])} failed; store {plan.folder}"
    )
    if state["queued"]:
        if options.evaluate:
            runner.warm_evaluators([u for u in plan.units if u.key in set(state["queued"])])
        workers = min(options.workers, len(state["queued"]))  # cores go to workers that have work
        worker_options = WorkerOptions(
            store, options.wandb, plan.spec.project, runner.worker_threads(workers)
        )
        try:
            if workers == 1:  # in this process: no start-up cost, and the same numbers as any worker
                watch(plan.folder, lambda: work(queue.study, Ablation(queue.study), worker_options) and None)
            else:
                procs = runner.spawn(plan.spec.name, workers, worker_options, storage)
                watch(plan.folder, lambda: [p.wait() for p in procs] and None, procs)
        except KeyboardInterrupt:
            typer.echo("interrupted; run the same command again to resume", err=True)
            raise typer.Exit(130) from None
    rows = st.experiment_rows(plan.folder)[1]
    c = st.counts(rows)
    _say(
        f"{plan.spec.name}: {c['done']}/{len(rows)} done, {c['failed']} failed, "
        f"{c['pending'] + c['running']} not done"
    )
    if c["pending"]:
        _say(f"run the same command again to resume the {c['pending']} unfinished run(s)")
    for r in rows:
        if r["state"] == "failed":
            _say(f"  failed {r['run']}: {r['note']}")
    if no_report:
        _say(f"runs are in {plan.folder}")
    else:
        _report(plan, options, c["done"] == len(rows))
    if c["done"] != len(rows):
        raise typer.Exit(1)


def _say(line: str) -> None:
    typer.echo(line)


def _report(plan, options, complete: bool) -> None:
    from harness.report import build_report

    try:
        out = build_report(options.store, plan.spec.name, options.reports)
    except Exception as exc:  # noqa: BLE001 - the runs are safe; a report problem must not hide them
        _say(f"runs are in {plan.folder}; the report could not be built: {type(exc).__name__}: {exc}")
        return
    what = "report" if complete else "partial report"
    _say(f"{what}: {out / 'report.md'} (runs in {plan.folder})")


def _print_plan(plan, workers: int) -> None:
    from harness.engine import estimate
    from harness.engine.plan import budget
    from harness.engine.worker import is_done

    todo = [u for u in plan.units if not is_done(u)]
    _say(f"{plan.spec.name}: {plan.spec.question}")
    _say(f"preset {plan.preset}, data {plan.data}, seeds {plan.seeds}, control {plan.spec.control}")
    _say(
        f"primary metric {plan.primary} ({plan.direction}); secondary: {', '.join(plan.secondary) or 'none'}"
    )
    for note in plan.notes:
        _say(f"  note: {note}")
    for u in plan.units:
        b = budget(u.cfg)
        mark = "done" if u not in todo else "todo"
        _say(
            f"  {mark}  {u.key}  {b['iterations'] or '?'} iterations, {b['epochs'] or '?'} epochs"
            f"  -> {u.run_dir}"
        )
    iterations = [budget(u.cfg)["iterations"] for u in todo]
    if None in iterations:
        seconds, how = None, "unknown (cannot count the training images)"
    else:
        seconds = estimate.plan_seconds([(u.cfg, n) for u, n in zip(todo, iterations, strict=True)], workers)
        how = estimate.how(workers)
    _say(
        f"{len(todo)} of {len(plan.units)} runs to train with {workers} worker(s): "
        f"about {st.fmt_seconds(seconds)} ({how})"
    )
    warning = estimate.too_long(seconds or 0, plan.preset)
    if warning:
        _say(warning)


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help="Experiment or sweep name (as in the queue), or a sweep spec.")],
    storage: StorageOpt = None,
    store: StoreOpt = Path("runs"),
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="Torch CPU threads (0 = torch's default).")
    ] = 0,
    wandb: WandbOpt = "auto",
    project: Annotated[
        str | None, typer.Option("--project", help="W&B project (default: the spec's).")
    ] = None,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip evaluation (metrics stay empty).")] = False,
    index: IndexOpt = None,
    heartbeat: HeartbeatOpt = None,
    grace: GraceOpt = None,
) -> None:
    """Join an experiment or a sweep: take its queued runs (or sampled trials) until none is left."""
    from harness.engine.plan import write_experiment
    from harness.engine.queue import Queue
    from harness.engine.worker import Ablation, WorkerOptions, work
    from harness.sweep.run import default_index, find_sweep, join
    from harness.sweep.spec import load_spec as load_sweep

    i = default_index() if index is None else index
    log = (
        (lambda m: typer.echo(m, err=True))
        if index is None
        else (lambda m: typer.echo(f"[worker {i}] {m}", err=True))
    )
    options = WorkerOptions(
        store, pick_mode(wandb), project or "cyclegan-harness", threads, not no_eval, i, log=log
    )
    try:
        path = find_sweep(name)
        if path:  # a sweep's trials come from its sampler
            done = join(load_sweep(path), storage, (heartbeat, grace), options)
            typer.echo(
                f"worker {i}: {done['complete']} finished, {done['pruned']} pruned, {done['failed']} failed"
            )
            return
        folder = store / name
        queue = Queue(name, storage, folder, create=False, heartbeat=(heartbeat, grace))
        record = queue.experiment_record() or {}
        if record and not (folder / "experiment.json").exists():
            write_experiment(folder, record)
        options.project = project or record.get("project", options.project)
        work(queue.study, Ablation(queue.study), options)
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command again to resume", err=True)
        raise typer.Exit(130) from None


@app.command("list")
def list_(store: StoreOpt = Path("runs")) -> None:
    """Every experiment spec with its question and how many of its runs are done in the store."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"experiments in {SPEC_DIR}/ (store {store})")
    for col in ("name", "kind", "runs done", "question"):
        table.add_column(col, overflow="fold")
    for path in sorted(SPEC_DIR.glob("*.toml")):
        try:
            spec = load_spec(path)
        except UserError as exc:
            kind = _kind(path)
            if kind != "ablation":
                table.add_row(path.stem, kind, _done(store / path.stem), _question(path))
            else:
                table.add_row(path.stem, "invalid", "-", str(exc))
            continue
        total = len(spec.arms) * len(spec.seeds)
        table.add_row(spec.name, "ablation", _done(store / spec.name, total), spec.question)
    Console(width=max(100, Console().width)).print(table)


def _kind(path: Path) -> str:
    try:
        return str(read_toml(path).get("kind", "ablation"))
    except UserError:
        return "ablation"


def _question(path: Path) -> str:
    return str(read_toml(path).get("question", ""))


def _done(folder: Path, planned: int | None = None) -> str:
    record, rows = st.experiment_rows(folder)
    if not record:
        return f"0/{planned}" if planned else "not started"
    return f"{st.counts(rows)['done']}/{len(rows)}"


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="Experiment name (folder under the store).")],
    store: StoreOpt = Path("runs"),
    json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Runs of an experiment: done / running / failed / pending, steps, speed, ETA, latest primary metric."""
    record, rows = st.experiment_rows(store / name)
    if not record:
        raise UserError(
            f"no experiment '{name}' in {store} (no {store / name / 'experiment.json'}); "
            f"start it with: harness run {name}"
        )
    c = st.counts(rows)
    if json_:
        import json

        typer.echo(json.dumps({"experiment": name, "counts": c, "runs": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    primary = (record.get("metrics") or {}).get("primary", "metric")
    table = Table(
        title=f"{name}: {c['done']} done, {c['running']} running, {c['failed']} failed, "
        f"{c['pending']} pending"
    )
    for col in ("run", "state", "step", "it/s", "ETA", primary):
        table.add_column(col)
    for r in rows:
        table.add_row(*cells(r))
    Console(width=max(100, Console().width)).print(table)
