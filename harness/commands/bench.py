"""``harness bench``: how fast is one training iteration, plain vs fast step, and what costs the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cyclegan.config import parse_set
from harness.errors import UserError
from harness.options import PresetOpt, SetOpt

app = typer.Typer()


@app.command()
def bench(
    preset: PresetOpt = "cpu",
    size: Annotated[
        int | None, typer.Option(help="Crop (and load) size in px; default: the preset's.")
    ] = None,
    iters: Annotated[int, typer.Option(help="Timed iterations per step kind.")] = 20,
    warmup: Annotated[int, typer.Option(help="Untimed iterations per step kind first.")] = 3,
    set_: SetOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    memory: Annotated[
        bool, typer.Option(help="Measure peak memory per step kind (a child process each).")
    ] = True,
    overhead: Annotated[
        bool,
        typer.Option(
            "--overhead",
            help="Instead of timing steps, train for real with run callbacks (tracking, W&B, eval, "
            "checkpoints, data) and report the share of wall time outside the train step.",
        ),
    ] = False,
    overhead_iters: Annotated[
        int | None, typer.Option(help="Iterations of the --overhead run (default: the preset's whole run).")
    ] = None,
) -> None:
    """Time the plain (reference-order) and fast train steps interleaved in one process; print the speed-up.

    Inputs are random tensors of the crop size (the cost does not depend on pixel values); both steps start
    from identical fresh models. Use --set model.n_blocks=6 for the paper's 128 px generator.
    """
    from harness import steptime as B

    for name, value, lo in (
        ("--iters", iters, 1),
        ("--warmup", warmup, 0),
        ("--overhead-iters", 1 if overhead_iters is None else overhead_iters, 1),
    ):
        if value < lo:
            raise UserError(f"bad value {value} for {name}: expected an integer >= {lo}")
    overrides = parse_set(set_)
    if overhead:
        iters_set = {} if overhead_iters is None else {"train.max_iters": overhead_iters}
        cfg = B.bench_config(preset, size, {**overrides, **iters_set})
        result = {"preset": preset, "overrides": overrides, **B.measure_overhead(cfg, B.engine_callbacks)}
        typer.echo(json.dumps(result, indent=2) if json_ else _overhead_text(result))
        return
    result = B.run_bench(preset, size, overrides, iters=iters, warmup=warmup, memory=memory)
    if json_:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_table(result)


def _overhead_text(r: dict[str, Any]) -> str:
    hooks = ", ".join(f"{k} {v:.2f} s" for k, v in r["hook_seconds"].items())
    return (
        f"overhead (everything but the train step, final evaluation included): "
        f"{100 * r['overhead_share_with_final_eval']:.1f} % of wall time\n"
        f"{r['iterations']} iterations ({r['callbacks']}): loop wall {r['wall_seconds']:.1f} s, train step "
        f"{r['train_seconds']:.1f} s, outside the step in the loop {r['overhead_seconds']:.2f} s "
        f"({100 * r['overhead_share']:.1f} %), final evaluation {r['final_eval_seconds']:.2f} s\n"
        f"in-loop hooks: {hooks}; data loading, checkpoint writes, bookkeeping: {r['other_seconds']:.2f} s\n"
        f"(log every {r['log_every']}, eval every {r['eval_every']}, checkpoint every "
        f"{r['checkpoint_every']}, {r['num_workers']} loader workers); "
        f"once-per-run set-up/teardown outside the loop {r['outside_loop_seconds']:.1f} s"
    )


COLUMNS: dict[str, Callable[[dict[str, Any]], str]] = {  # header: the cell of one step kind's summary
    "ms/it (median)": lambda s: f"{s['median_ms']:.1f}",
    "IQR": lambda s: f"{s['q1_ms']:.1f}-{s['q3_ms']:.1f}",
    "min-max": lambda s: f"{s['min_ms']:.1f}-{s['max_ms']:.1f}",
    "CPU ms/it": lambda s: f"{s['cpu_median_ms']:.1f}",
    "it/s": lambda s: f"{s['it_per_s']:.2f}",
    "img/s": lambda s: f"{s['images_per_s']:.2f}",
    "GFLOP/it": lambda s: f"{s['gflop_per_iter']:.2f}",
    "GFLOP/s": lambda s: f"{s['gflops']:.1f}",
    "of peak": lambda s: f"{100 * s['share_of_peak']:.0f} %",
    "peak MB (base)": lambda s: f"{s['peak_mb']:.0f} ({s['base_mb']:.0f})" if "peak_mb" in s else "-",
}


def _print_table(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    title = (
        f"train step, preset {r['preset']} at {r['crop_size']} px, batch {r['batch_size']}, "
        f"{r['n_blocks']} blocks, {r['device']} x{r['threads']} threads, "
        f"{r['iters']} interleaved iterations after {r['warmup']} warm-up"
    )
    table = Table(title=title)
    table.add_column("step", justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for kind, s in r["steps"].items():
        table.add_row(kind, *(cell(s) for cell in COLUMNS.values()))
    console.print(table)
    p = r["conv_peak"]
    console.print(
        f"machine peak (64->64 3x3 conv forward, 1x64x256x256, {p['gflop']:.2f} GFLOP): "
        f"{p['gflops_median']:.0f} GFLOP/s median, {p['gflops_best']:.0f} best"
    )
    if not r["fast_path"]:
        console.print(f"fast step fell back to the plain step: {r['fallback']}")
    if r["compile_seconds"] is not None:
        console.print(f"torch.compile time (first call, not timed above): {r['compile_seconds']:.1f} s")
    console.print(
        f"speed-up plain / fast, median wall time: [bold]{r['speedup']:.2f}x[/bold]; median CPU time: "
        f"{r['speedup_cpu_time']:.2f}x  (inputs: {r['inputs']})"
    )
