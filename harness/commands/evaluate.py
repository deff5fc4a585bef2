"""``harness eval CHECKPOINT``: score a checkpoint with the Evaluator, next to do-nothing and the oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.commands.core import na
from harness.errors import UserError

app = typer.Typer()

NORM_STATS = ("running", "per-image")


@app.command("eval")
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A harness checkpoint (checkpoints/latest.pt).")],
    grid: Annotated[Path | None, typer.Option(help="Also write the sample grid PNG here.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0 = torch's default).")] = 0,
    norm_stats: Annotated[
        str,
        typer.Option(
            help="What batch norm normalises with at test time: running (its running averages; eval mode, "
            "as in every training-time evaluation and the reference's --eval) or per-image (each test "
            "image's own statistics, the reference test script's default at batch size 1). Instance norm "
            "is unaffected.",
        ),
    ] = "running",
) -> None:
    """Every registered metric of a trained checkpoint on its data set's test set, beside the reference rows
    (do nothing, oracle, noise, flat colour, blur)."""
    import torch

    from cyclegan import checkpoint as ckpt
    from cyclegan.metrics import REGISTRY, Evaluator, primary_metric

    if norm_stats not in NORM_STATS:
        raise UserError(f"--norm-stats: '{norm_stats}'; valid: {', '.join(NORM_STATS)}")
    if threads:
        torch.set_num_threads(threads)
    model, state = ckpt.load_trained(checkpoint)
    cfg = model.cfg
    evaluator = Evaluator(cfg, model.device, norm_stats.replace("-", "_"))
    metrics, refs = evaluator(model), evaluator.reference_points()
    if grid is not None:
        evaluator.sample_grid(model, grid)
    primary = primary_metric(cfg.data.dataset)
    if json_:
        out = {
            "checkpoint": str(checkpoint),
            "iteration": state.get("iteration"),
            "norm_stats": norm_stats,
            "primary": primary.name,
            "metrics": metrics,
            "reference_points": refs,
            "provenance": evaluator.provenance(),
        }
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{checkpoint} (iteration {state.get('iteration')}, data {cfg.data.dataset}, batch norm "
        f"statistics {norm_stats}); primary: {primary.name} ({primary.direction})"
    )
    for col in ("metric", "better", "trained", *(r.replace("_", " ") for r in refs), "definition"):
        table.add_column(col, overflow="fold")
    for name, value in metrics.items():
        m = REGISTRY[name]
        better = "higher" if m.higher_is_better else "lower"
        cells = [na(row.get(name)) for row in refs.values()]
        table.add_row(name, better, na(value), *cells, m.definition)
    Console(width=220).print(table)
    prov = evaluator.provenance()
    rejection = ", ".join(f"{k} {v:.0%}" for k, v in prov["classifier_rejection"].items())
    typer.echo(
        f"test images: {prov['n_test_A']} A, {prov['n_test_B']} B; domain classifier held-out accuracy "
        f"{prov['classifier_accuracy']:.3f}, degenerate test images rejected: {rejection}"
    )
    typer.echo(
        f"FID / KID-Inception: {prov['fid_network']}"
        if prov["fid_network"]
        else "FID / KID-Inception: not available (harness models download fid-inception)"
    )
