"""``harness bench``: interleaved timing of the plain and fast steps, FLOP counts, memory and overhead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cyclegan.config import ConfigError, resolve
from harness import steptime as bench
from harness.cli import app

HARNESS = [sys.executable, "-m", "harness"]


def test_bench_json_times_both_steps_on_the_same_work() -> None:
    result = CliRunner().invoke(
        app, ["bench", "--preset", "smoke", "--iters", "3", "--warmup", "1", "--json", "--no-memory"]
    )
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["crop_size"] == 16 and r["fast_path"] is True and r["iters"] == 3
    plain, fast = r["steps"]["plain"], r["steps"]["fast"]
    for s in (plain, fast):
        assert s["n"] == 3 and 0 < s["min_ms"] <= s["median_ms"] <= s["max_ms"]
        assert s["q1_ms"] <= s["median_ms"] <= s["q3_ms"]
        assert s["it_per_s"] == pytest.approx(1000 / s["median_ms"])
        assert s["images_per_s"] == pytest.approx(2 * s["it_per_s"])  # batch 1, one image per domain
        assert s["cpu_median_ms"] > 0
    # Batching changes how the work is launched, and adds exactly one thing: the first 7x7 conv's input
    # gradient for the real images that share a batch with a fake (real_B, real_A in G_B; real_B in G_A).
    cfg = resolve("smoke")
    first_conv_dgrad = 2 * 3 * cfg.model.ngf * 7 * 7 * 16 * 16 / 1e9
    assert plain["gflop_per_iter"] > 0
    assert fast["gflop_per_iter"] == pytest.approx(plain["gflop_per_iter"] + 3 * first_conv_dgrad, rel=1e-9)
    assert r["speedup"] == pytest.approx(plain["median_ms"] / fast["median_ms"])
    # 2 * 64 * 64 * 9 * 256 * 256 multiply-adds of the reference convolution
    assert r["conv_peak"]["gflop"] == pytest.approx(2 * 64 * 64 * 9 * 256 * 256 / 1e9)
    assert plain["share_of_peak"] == pytest.approx(plain["gflops"] / r["conv_peak"]["gflops_median"])


def test_bench_size_and_set_override_the_preset() -> None:
    cfg = bench.bench_config("paper", 128, {"model.n_blocks": "6"})
    assert (cfg.data.crop_size, cfg.data.load_size, cfg.model.n_blocks, cfg.model.ngf) == (128, 128, 6, 64)


def test_bench_table_and_fallback_note() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--preset",
            "smoke",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--no-memory",
            "--set",
            "model.norm=batch",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "fell back to the plain step: batch norm" in result.output
    assert "speed-up plain / fast" in result.output and "plain" in result.output


def test_peak_memory_is_measured_in_a_fresh_process() -> None:
    cfg = resolve("smoke")
    mem = bench.peak_memory_mb(cfg, "fast", bench.pick_device("cpu"), iters=1)
    assert mem["peak_mb"] >= mem["base_mb"] > 10  # torch alone is tens of MB


def test_bench_bad_input_is_one_line_and_exit_2() -> None:
    args = [*HARNESS, "bench", "--iters", "0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == "error: bad value 0 for --iters: expected an integer >= 1\n"
    assert proc.stdout == ""


def test_bench_bad_size_or_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad value 2 for 'data.crop_size'"):
        bench.bench_config("cpu", 2)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        bench.bench_config("nope", None)


def test_overhead_trains_for_real_with_run_callbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = resolve("smoke", {"train.max_iters": 6, "train.eval_every": 3, "train.checkpoint_every": 3})
    run = tmp_path / "run"
    r = bench.measure_overhead(cfg, bench.engine_callbacks, run)
    assert r["iterations"] == 6 and r["callbacks"] == "engine_callbacks"
    assert 0 < r["train_seconds"] < r["wall_seconds"]
    assert r["overhead_share"] == pytest.approx((r["wall_seconds"] - r["train_seconds"]) / r["wall_seconds"])
    # one evaluation inside the loop (at 3), the last one (at 6) after the loop stops its wall clock
    assert r["hook_seconds"]["on_eval"] > 0 and r["final_eval_seconds"] > 0
    assert r["overhead_share_with_final_eval"] > r["overhead_share"]
    assert r["other_seconds"] == pytest.approx(r["overhead_seconds"] - sum(r["hook_seconds"].values()))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in records if x["kind"] == "loss"] == [2, 4, 6]
    assert [x["iteration"] for x in records if x["kind"] == "eval"] == [3, 6]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["0000003.png", "0000006.png"]
    assert json.loads((run / "summary.json").read_text())["iteration"] == 6
    assert (run / "checkpoints" / "latest.pt").is_file()
    # the W&B tracker the worker starts really ran (offline, as WANDB_MODE asks) and wrote its history here
    assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
