"""``harness sweep NAME``: an Optuna search over config keys, with pruning, resume, workers and a report."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from cyclegan.config import parse_set
from harness import options as opt
from harness.commands.progress import resumable, run_workers, say_estimate
from harness.engine.remote import pull, url_of
from harness.errors import UserError

app = typer.Typer()


@app.command()
def sweep(
    name: Annotated[
        str, typer.Argument(help="Sweep name ('lambda' = experiments/sweep-lambda.toml) or a spec path.")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Trials to ADD to those finished or pruned so far (default: the spec's trials; none with "
            "--confirm alone). Running the command again adds more; `--join` works towards the target.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Local worker processes.")] = 1,
    storage: opt.StorageOpt = None,
    preset: opt.SpecPresetOpt = None,
    set_: opt.SetOpt = None,
    store: opt.StoreOpt = Path("runs"),
    reports: opt.ReportsOpt = Path("reports"),
    wandb: opt.WandbOpt = "auto",
    confirm: Annotated[
        int | None,
        typer.Option(
            "--confirm",
            help="Re-run the best config and the default with K fresh seeds (default: spec's confirm_seeds).",
        ),
    ] = None,
    join: Annotated[
        bool,
        typer.Option(
            "--join", help="Join an existing study as one worker (another machine, or a local worker)."
        ),
    ] = False,
    index: opt.IndexOpt = None,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch threads per worker (0 = cores / workers).")
    ] = 0,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the report at the end.")] = False,
    heartbeat: opt.HeartbeatOpt = None,
    grace: opt.GraceOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the search space, the trials to run and an estimate.")
    ] = False,
) -> None:
    """Search the spec's space with Optuna (TPE by default), prune weak trials, then write reports/NAME/."""
    import optuna

    from harness.engine import runner
    from harness.engine.queue import describe_storage, journal_path
    from harness.engine.tracking import pick_mode
    from harness.engine.worker import WorkerOptions
    from harness.sweep import run as R
    from harness.sweep.spec import find_spec, load_spec
    from harness.sweep.study import counted

    if workers < 0:
        raise UserError(f"--workers {workers}: expected 0 (only create the study) or more")
    if trials is not None and trials < 0:
        raise UserError(f"--trials {trials}: expected 0 or more")
    spec = load_spec(find_spec(name))  # bad input fails here, before anything is written
    overrides = parse_set(set_)
    if preset is not None or overrides:
        spec = spec.with_preset(preset, overrides)
    add = trials if trials is not None else (0 if confirm is not None else spec.trials)  # --confirm alone
    if dry_run:
        _print_plan(spec, add, max(1, workers), confirm)
        return
    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's banners would bury the progress lines
    i = R.default_index() if join and index is None else (index or 0)
    opts = WorkerOptions(store, pick_mode(wandb), threads=threads or runner.worker_threads(max(1, workers)),
                         index=i, log=worker_log(f"[worker {i}] " if join else ""))  # fmt: skip
    with resumable("interrupted; the running trials are queued again: run the same command to resume"):
        if join:
            return join_sweep(spec, storage, (heartbeat, grace), opts)
        command = "harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        adopt = preset is None and not overrides  # no flags: the study's own config (confirm, reruns)
        study, target, spec = R.prepare(spec, storage, store, add, command, adopt)
        where = describe_storage(storage, journal_path(store, spec.name))
        typer.echo(f"sweep {spec.name}: target {target} finished or pruned trials; storage {where}")
        if workers == 0:
            typer.echo(f"study ready; start workers with: harness worker {spec.name} --storage ...")
            return
        job = partial(R.join, spec, storage, (heartbeat, grace), opts)
        run_workers(store / spec.name, workers, job, str(spec.path), opts, storage)
        k = spec.confirm_seeds if confirm is None else confirm
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        got = counted(study.get_trials(deepcopy=False))
        if got < target:  # a worker stopped early: confirming the best of a partial search would mislead
            typer.echo(f"{got} of {target} trials finished or pruned: run the same command again to resume "
                       "(confirmation waits for the whole search)", err=True)  # fmt: skip
        elif k and not finished:
            typer.echo("no finished trial (all pruned or failed): nothing to confirm", err=True)
        elif k:
            _confirm(spec, study, store, k, storage, workers, opts)
        if no_report and url_of(store):  # the study's copy, so that any machine can report (harness report)
            from harness.sweep.snapshot import write_snapshot

            write_snapshot(store / spec.name, study)
        elif not no_report:
            from harness.sweep.report import build_sweep_report

            pull(store / spec.name)  # a URL store: the trials other machines ran (runs.csv, the best's runs)
            folder = build_sweep_report(store, spec.name, reports, storage=storage)
            typer.echo(f"report: {folder / 'report.md'}")
            typer.echo(f"html:   {folder / 'report.html'}")
        if got < target:
            raise typer.Exit(1)


def worker_log(prefix: str) -> Callable[[str], None]:
    """A worker's progress lines go to stderr, prefixed with its index when several share the terminal."""
    return lambda line: typer.echo(f"{prefix}{line}", err=True)


def join_sweep(spec, storage: str | None, heartbeat: tuple[int | None, int | None], opts) -> None:
    """Work on the sweep's study as one worker (``--join``, ``harness worker``) and say what it did."""
    from harness.sweep.run import join

    n = join(spec, storage, heartbeat, opts)
    typer.echo(f"worker {opts.index}: {n['complete']} finished, {n['pruned']} pruned, {n['failed']} failed")


def _confirm(spec, study, store: Path, k: int, storage: str | None, workers: int, opts) -> None:
    """Best and default on k fresh seeds: an ablation's queue, drained by the sweep's K workers."""
    from harness.engine.worker import Ablation, work
    from harness.sweep import confirm as C

    queue, record = C.enqueue_confirmation(spec, study, store, k, storage)
    typer.echo(f"confirmation: best trial {record['best_trial']} and the default on seeds {record['seeds']}")
    in_process = partial(work, queue.study, Ablation(queue.study), opts)
    run_workers(store / spec.name, workers, in_process, C.queue_name(spec.name), opts, storage)
    C.write_record(store / spec.name, record)


def _print_plan(spec, add: int, workers: int, confirm: int | None) -> None:
    """The search space, the trials and confirmation runs to add, and an estimate of their wall-clock time."""
    from harness.engine.plan import budget
    from harness.sweep.spec import base_config

    cfg = base_config(spec)
    typer.echo(f"{spec.name}: {spec.question}")
    typer.echo(f"preset {spec.preset}, data {cfg.data.dataset}, seeds {list(spec.seeds)} per trial, "
               f"sampler {spec.sampler}, pruner {spec.pruner}")  # fmt: skip
    for p in spec.params:
        typer.echo(f"  {p.key}: {p.describe()}")
    for o in spec.objectives:
        typer.echo(f"  objective: {o.direction} {o.metric}")
    k = spec.confirm_seeds if confirm is None else confirm
    runs = add * len(spec.seeds) + 2 * k
    its = budget(cfg)["iterations"]
    lead = (
        f"up to {add} trial(s) x {len(spec.seeds)} seed(s) + {2 * k} confirmation run(s) = {runs} runs of "
        f"{its if its is not None else '?'} iterations with {workers} worker(s), less with pruning: at most "
    )
    say_estimate(lead, [(cfg, its)] * runs, workers, spec.preset)
