"""``harness sweep NAME``: an Optuna search over config keys, with pruning, resume, workers and a report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import app
from harness.errors import UserError
from harness.options import SetOpt, SpecPresetOpt, overrides_from

StoreOpt = Annotated[Path, typer.Option("--store", help="Run store root.")]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL shared by workers on several machines (postgresql://user:pw@host/db); "
        "default: the journal file runs/NAME/queue.journal (one machine).",
    ),
]
WandbOpt = Annotated[
    str,
    typer.Option(
        "--wandb", help="W&B mode: auto (online with an API key, else offline), online, offline, disabled."
    ),
]


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
    storage: StorageOpt = None,
    preset: SpecPresetOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = Path("runs"),
    out: Annotated[Path, typer.Option("--out", help="Reports root; the report goes to OUT/NAME/.")] = Path(
        "reports"
    ),
    wandb: WandbOpt = "auto",
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
    index: Annotated[
        int | None,
        typer.Option("--index", help="Worker index: its sampler seed is the spec's sampler_seed + index."),
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch threads per worker (0 = cores / workers).")
    ] = 0,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the report at the end.")] = False,
    heartbeat: Annotated[
        int,
        typer.Option(
            "--heartbeat", min=1, help="SQL storages: seconds between a running trial's heartbeats."
        ),
    ] = 20,
    grace: Annotated[
        int,
        typer.Option(
            "--grace", min=1, help="SQL storages: a trial silent this long is failed and re-queued."
        ),
    ] = 60,
) -> None:
    """Search the spec's space with Optuna (TPE by default), prune weak trials, then write reports/NAME/."""
    import optuna

    from harness.engine.runner import worker_threads
    from harness.engine.tracking import pick_mode
    from harness.sweep import run as R
    from harness.sweep import study as S
    from harness.sweep.spec import find_spec, load_spec
    from harness.sweep.worker import WorkerOptions

    if workers < 0:
        raise UserError(f"--workers {workers}: expected 0 (only create the study) or more")
    if trials is not None and trials < 0:
        raise UserError(f"--trials {trials}: expected 0 or more")
    spec = load_spec(find_spec(name))  # bad input fails here, before anything is written

    overrides = overrides_from(set_)
    if preset is not None or overrides:
        spec = spec.with_preset(preset, overrides)
    mode = pick_mode(wandb)
    threads = threads or worker_threads(workers)
    opts = WorkerOptions(store=store, threads=threads, wandb_mode=mode, log=lambda m: typer.echo(m, err=True))

    def go() -> None:
        if join:
            i = R.default_index() if index is None else index
            done = R.join(spec, storage, store, i, (heartbeat, grace), WorkerOptions(
                store=store, threads=threads, wandb_mode=mode,
                log=lambda m: typer.echo(f"[worker {i}] {m}", err=True),
            ))  # fmt: skip
            typer.echo(
                f"worker {i}: {done['complete']} finished, {done['pruned']} pruned, {done['failed']} failed"
            )
            return
        command = "harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        add = trials if trials is not None else (0 if confirm is not None else spec.trials)  # --confirm alone
        study, target = R.prepare(spec, storage, store, add, command)
        where = S.describe_storage(storage, S.journal_path(store, spec.name))
        typer.echo(f"sweep {spec.name}: target {target} finished or pruned trials; storage {where}")
        if workers == 0:
            typer.echo(f"study ready; start workers with: harness sweep {name} --join --storage ...")
            return
        if workers == 1:
            R.join(spec, storage, store, 0, (heartbeat, grace), opts)
        else:
            procs = R.spawn_workers(
                str(spec.path), workers, store=store, storage=storage, preset=preset, sets=set_ or [],
                threads=threads, wandb=mode, heartbeat=(heartbeat, grace),
            )  # fmt: skip
            codes = [p.wait() for p in procs]
            if any(codes):
                typer.echo(f"warning: worker exit codes {codes}", err=True)
        k = spec.confirm_seeds if confirm is None else confirm
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if k and not finished:
            typer.echo("no finished trial (all pruned or failed): nothing to confirm", err=True)
        elif k:
            from harness.sweep.confirm import run_confirmation

            run_confirmation(spec, study, store, k, opts)
        if not no_report:
            from harness.sweep.report import build_sweep_report

            folder = build_sweep_report(store, spec.name, out, storage=storage)
            typer.echo(f"report: {folder / 'report.md'}")
            typer.echo(f"html:   {folder / 'report.html'}")

    try:
        go()
    except KeyboardInterrupt:
        typer.echo(
            "interrupted; the running trials are queued again: run the same command to resume", err=True
        )
        raise typer.Exit(130) from None
