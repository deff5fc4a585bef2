"""``harness run`` (an experiment end to end), ``harness worker`` (join one), ``harness list``, ``status``."""

from __future__ import annotations

import os
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import parse_set
from harness.commands.progress import resumable, run_workers, runs_table, say_estimate
from harness.commands.sweep import join_sweep, worker_log
from harness.engine import status as st
from harness.engine.remote import pull, shown
from harness.engine.spec import SPEC_DIR, load_spec, read_toml
from harness.engine.tracking import pick_mode
from harness.errors import UserError
from harness.options import (
    ForceOpt,
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
    force: ForceOpt = False,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="Add seeds in batches until every declared comparison is decided or the spec's max_seeds.",
        ),
    ] = False,
    no_reuse: Annotated[
        bool,
        typer.Option(
            "--no-reuse",
            help="Train every run here, even one whose config, data and code equal a finished run's in the "
            "store (by default that run's result is reused).",
        ),
    ] = False,
) -> None:
    """Train every arm x seed of an experiment (run it again to resume), then build its report."""
    from harness.engine import runner

    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's banners would bury the progress lines
    options = runner.RunOptions(
        store, workers, storage, pick_mode(wandb), retry_failed, True, reports, reuse=not no_reuse
    )
    plan = runner.plan_from_args(name, store, preset, seeds, data, parse_set(set_), primary, secondary)
    if until_decided and not plan.spec.max_seeds:
        raise UserError(f"--until-decided: {plan.spec.path} sets no max_seeds (the most seeds per arm)")
    if dry_run:
        _print_plan(plan, workers, not no_reuse)
        return
    if not no_report:
        from harness.report.build import check_target

        target = {"store": shown(store), "preset": plan.preset, "data": plan.data, "seeds": plan.seeds}
        check_target(reports / plan.spec.name, target, force)
    runner.check_data(plan)
    command = "harness run " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["run"] else f"harness run {name}"
    while (c := _train(plan, options, command)) and until_decided and c["done"] == c["total"]:
        from harness.report.planning import next_seeds

        more, why = next_seeds(store, plan.spec.name)
        typer.echo(why)
        if more is None:
            break
        plan = runner.plan_from_args(name, store, preset, more, data, parse_set(set_), primary, secondary)
    if no_report:
        typer.echo(f"runs are in {shown(plan.folder)}")
    else:
        _report(plan, options, c["done"] == c["total"], force)
    if c["done"] != c["total"]:
        raise typer.Exit(1)


def _train(plan, options, command: str) -> dict[str, int]:
    """Enqueue and train the plan's runs that are not done; the experiment's counts (and total) after."""
    from harness.engine import runner
    from harness.engine.worker import Ablation, WorkerOptions, work
    from harness.report.index import describe_reuse

    queue, state = runner.prepare(plan, options, command)
    reused = state["reused"]
    typer.echo(
        f"{plan.spec.name}: {len(plan.units)} runs ({len(plan.spec.arms)} arms x {len(plan.seeds)} seeds): "
        f"{len(state['done']) - len(reused)} done, {describe_reuse(reused) + ', ' if reused else ''}"
        f"{len(state['queued'])} to run, {len(state['running'])} running, {len(state['failed'])} failed; "
        f"store {shown(plan.folder)}"
    )
    if state["queued"]:
        workers = min(options.workers, len(state["queued"]))  # cores go to workers that have work
        if options.evaluate:
            queued = [u for u in plan.units if u.key in set(state["queued"])]
            runner.warm_evaluators(queued, runner.worker_threads(workers))
        opts = WorkerOptions(options.store, options.wandb, plan.spec.project, runner.worker_threads(workers))
        with resumable():
            job = partial(work, queue.study, Ablation(queue.study), opts)
            run_workers(plan.folder, workers, job, plan.spec.name, opts, options.storage)
    pull(plan.folder)  # a URL store: the runs other machines finished meanwhile
    rows = st.experiment_rows(plan.folder)[1]
    c = st.counts(rows)
    typer.echo(
        f"{plan.spec.name}: {c['done']}/{len(rows)} done, {c['failed']} failed, "
        f"{c['pending'] + c['running']} not done"
    )
    if c["pending"]:
        typer.echo(f"run the same command again to resume the {c['pending']} unfinished run(s)")
    for r in rows:
        if r["state"] == "failed":
            typer.echo(f"  failed {r['run']}: {r['note']}")
    return {**c, "total": len(rows)}


def _report(plan, options, complete: bool, force: bool) -> None:
    from harness.engine.tracking import publish_report
    from harness.report import build_report

    try:
        out = build_report(options.store, plan.spec.name, options.reports, force=force)
    except Exception as exc:  # noqa: BLE001 - the runs are safe; a report problem must not hide them
        typer.echo(f"runs are in {plan.folder}; the report could not be built: {type(exc).__name__}: {exc}")
        return
    typer.echo(f"{'report' if complete else 'partial report'}: {out / 'report.md'} (runs in {plan.folder})")
    line = publish_report(plan.folder, out, options.wandb)
    if line:
        typer.echo(line)


def _print_plan(plan, workers: int, reusing: bool) -> None:
    from harness.engine import reuse
    from harness.engine.plan import budget
    from harness.engine.worker import is_done
    from harness.report.index import describe_reuse

    pull(plan.folder)  # a URL store: its local copy, so "done" is what every machine finished
    adopted = {u.key: o for u in plan.units if (o := reuse.reused_from(u.run_dir))}
    done = {u.key for u in plan.units if is_done(u) and (reusing or u.key not in adopted)}
    reusable = reuse.sources(plan.units, plan.store, done) if reusing else {}
    origins = {**{k: o for k, o in adopted.items() if k in done},
               **{k: s.relative_to(plan.store).as_posix() for k, (s, _) in reusable.items()}}  # fmt: skip
    todo = [u for u in plan.units if u.key not in done and u.key not in reusable]
    typer.echo(f"{plan.spec.name}: {plan.spec.question}")
    typer.echo(f"preset {plan.preset}, data {plan.data}, seeds {plan.seeds}, control {plan.spec.control}")
    typer.echo(
        f"primary metric {plan.primary} ({plan.direction}); secondary: {', '.join(plan.secondary) or 'none'}"
    )
    for note in plan.notes:
        typer.echo(f"  note: {note}")
    budgets = {u.key: budget(u.cfg) for u in plan.units}
    for u in plan.units:
        b = budgets[u.key]
        mark = "todo" if u in todo else "reuse" if u.key in origins else "done"
        where = f"reused from {origins[u.key]}" if u.key in origins else f"-> {u.run_dir}"
        typer.echo(
            f"  {mark:5} {u.key}  {b['iterations'] or '?'} iterations, {b['epochs'] or '?'} epochs  {where}"
        )
    lead = (
        f"{len(plan.units)} runs: {len(todo)} to train, {describe_reuse(list(origins.values()))}, "
        f"{len(done - adopted.keys())} already done; with {workers} worker(s): "
    )
    say_estimate(lead, [(u.cfg, budgets[u.key]["iterations"]) for u in todo], workers, plan.preset)
    from harness.report.planning import margin_lines

    for line in margin_lines(plan.spec, plan.folder, plan.primary, list(plan.secondary)):
        typer.echo(line)


@app.command()
def worker(
    name: Annotated[
        str,
        typer.Argument(
            help="Experiment or sweep name (as in the queue), a sweep spec, or NAME.confirm (a sweep's "
            "confirmation runs)."
        ),
    ],
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
    from harness.sweep.confirm import CONFIRM_SUFFIX
    from harness.sweep.run import default_index, find_sweep
    from harness.sweep.spec import load_spec as load_sweep

    i = default_index() if index is None else index
    log = worker_log(f"[worker {i}] " if index is not None else "")
    options = WorkerOptions(
        store, pick_mode(wandb), project or "cyclegan-harness", threads, not no_eval, i, log=log
    )
    with resumable():
        path = find_sweep(name)
        if path:  # a sweep's trials come from its sampler
            return join_sweep(load_sweep(path), storage, (heartbeat, grace), options)
        folder = store / name.removesuffix(CONFIRM_SUFFIX)  # a sweep's confirmation queue is in its folder
        queue = Queue(name, storage, folder, create=False, heartbeat=(heartbeat, grace))
        record = queue.experiment_record() or {}
        if record and not (folder / "experiment.json").exists():
            write_experiment(folder, record)
        options.project = project or record.get("project", options.project)
        work(queue.study, Ablation(queue.study), options)


@app.command("list")
def list_(store: StoreOpt = Path("runs")) -> None:
    """Every experiment spec with its question and how many of its runs are done in the store."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"experiments in {SPEC_DIR}/ (store {shown(store)})")
    for col in ("name", "kind", "runs done", "question"):
        table.add_column(col, overflow="fold")
    for path in sorted(SPEC_DIR.glob("*.toml")):
        try:
            spec = load_spec(path)
        except UserError as exc:
            raw = _raw(path)
            if raw.get("kind", "ablation") != "ablation":
                question = str(raw.get("question", ""))
                table.add_row(path.stem, str(raw["kind"]), _done(store / path.stem), question)
            else:
                table.add_row(path.stem, "invalid", "-", str(exc))
            continue
        total = len(spec.arms) * len(spec.seeds)
        table.add_row(spec.name, "ablation", _done(store / spec.name, total), spec.question)
    Console(width=max(100, Console().width)).print(table)


def _raw(path: Path) -> dict:
    """The spec's TOML as read, or nothing when it cannot be read (an invalid ablation spec)."""
    try:
        return read_toml(path)
    except UserError:
        return {}


def _done(folder: Path, planned: int | None = None) -> str:
    pull(folder)
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
    pull(store / name)
    record, rows = st.experiment_rows(store / name)
    if not record:
        raise UserError(
            f"no experiment '{name}' in {shown(store)} (no {shown(store / name / 'experiment.json')}); "
            f"start it with: harness run {name}"
        )
    c = st.counts(rows)
    if json_:
        import json

        typer.echo(json.dumps({"experiment": name, "counts": c, "runs": rows}, indent=2))
        return
    from rich.console import Console

    title = f"{name}: {c['done']} done, {c['running']} running, {c['failed']} failed, {c['pending']} pending"
    Console(width=max(100, Console().width)).print(runs_table(title, record, rows))
