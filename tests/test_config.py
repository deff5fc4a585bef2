"""Config tree: paper defaults, presets, dotted overrides and their errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from cyclegan.config import Config, ConfigError, apply_overrides, parse_set, resolve


def test_paper_defaults() -> None:
    cfg = resolve("paper")
    assert (cfg.model.ngf, cfg.model.n_blocks, cfg.model.netD, cfg.model.n_layers_D) == (64, 9, "patch", 3)
    assert (cfg.loss.lambda_A, cfg.loss.lambda_B, cfg.loss.lambda_identity) == (10.0, 10.0, 0.5)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.n_epochs, cfg.optim.n_epochs_decay) == (
        2e-4,
        0.5,
        100,
        100,
    )
    assert (cfg.train.pool_size, cfg.train.batch_size, cfg.data.load_size, cfg.data.crop_size) == (
        50,
        1,
        286,
        256,
    )


def test_overrides_are_typed() -> None:
    cfg = resolve("smoke", parse_set(["loss.lambda_identity=0", "model.netD=scalar", "data.no_flip=true"]))
    assert cfg.loss.lambda_identity == 0.0 and isinstance(cfg.loss.lambda_identity, float)
    assert cfg.model.netD == "scalar" and cfg.data.no_flip is True


def test_round_trip_and_digest() -> None:
    cfg = resolve("cpu", {"train.seed": 3})
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert cfg.digest() != resolve("cpu", {"train.seed": 4}).digest()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"loss.lambda_idt": 0}, "unknown config key 'loss.lambda_idt'; valid keys in 'loss': gan_mode"),
        ({"nosuch.key": 1}, "unknown config key 'nosuch.key'; sections are: model"),
        (
            {"model.netD": "big"},
            "bad value 'big' for 'model.netD': expected one of 'patch', 'pixel', 'scalar'",
        ),
        ({"model.n_layers_D": 7}, "bad value 7 for 'model.n_layers_D': expected an integer in [1, 5]"),
        ({"train.batch_size": "two"}, "bad value 'two' for 'train.batch_size': expected an integer"),
        ({"loss.lambda_A": -1}, "bad value -1 for 'loss.lambda_A': expected a number in [0, 1000]"),
        ({"data.no_flip": "maybe"}, "bad value 'maybe' for 'data.no_flip': expected true/false"),
        ({"train.seed": 1.5}, "bad value 1.5 for 'train.seed'"),
    ],
)
def test_bad_overrides_name_key_and_allowed_values(override: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), override)
    assert message in str(err.value)


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'; valid: paper, cpu, demo, smoke"):
        resolve("huge")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "--set", "model.netD=bogus"], "--set: bad value 'bogus' for 'model.netD'"),
        (["info", "--set", "model.nope=1"], "--set: unknown config key 'model.nope'"),
        (["info", "--preset", "huge"], "--preset: unknown preset 'huge' (valid: paper, cpu, demo, smoke)"),
        (["run", "ablate-pool", "--preset", "fast", "--dry-run"], "--preset: unknown preset 'fast' (valid: "),
        (["sweep", "lambda", "--preset", "fast"], "--preset: unknown preset 'fast' (valid: "),
        (["run", "ablate-pool", "--set", "model.ngf=abc", "--dry-run"], "--set: bad value 'abc' for 'model."),
        (["info", "--set", "justakey"], "--set: bad override 'justakey'"),
        (["translate", "/nonexistent.pt", "x.png"], "checkpoint not found: /nonexistent.pt"),
        (["eval", "x.pt", "--norm-stats", "batch"], "--norm-stats: 'batch'; valid: running, per-image"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def _commands(group, path: tuple[str, ...] = ()):
    """Every leaf command's name path (``("data", "download")``) under a Typer-built group."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_help_shows_metavars_not_python_types() -> None:
    """Every command's --help names what to type (PATH, N, KEY=VALUE), never a Python type (<bool>, <str>)."""
    from harness.cli import app

    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 15
    for path in commands:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "150"})
        assert result.exit_code == 0, (path, result.output)
        python_type = re.search(r"<(bool|str|int|float|path|list\[|\w+ range)\b", result.output)
        assert python_type is None, (path, result.output)
    run_help = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "150"}).output
    assert re.search(r"--workers +N \[x>=1\]", run_help) and re.search(r"--set +KEY=VALUE", run_help)
    assert re.search(r"--store +PATH", run_help) and "{NAME}" in run_help
    translate_help = CliRunner().invoke(app, ["translate", "--help"], env={"COLUMNS": "150"}).output
    assert "[default: paper]" not in translate_help
    assert "config is the checkpoint's own" in re.sub(r"[│\s]+", " ", translate_help)
