"""Experiment specs: shipped specs load; a bad spec is one line naming the file and key, exit 2, no files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from harness import cli
from harness.engine.metric_names import dataset_names
from harness.engine.plan import build_plan
from harness.engine.queue import Queue
from harness.engine.spec import load_spec
from harness.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _claim(queue: Queue, worker: str) -> str | None:
    """What a worker's ``Study.optimize`` does first: pop a queued trial (None when none is queued)."""
    if not queue.study.get_trials(states=(TrialState.WAITING,)):
        return None
    trial = queue.study.ask()
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("heartbeat", time.time())
    return trial.user_attrs["unit"]


HARNESS = [sys.executable, "-m", "harness"]

GOOD = """
name = "t"
question = "Does the pool matter?"
preset = "smoke"
control = "a"
seeds = 2
{extra}

[arms.a]
"train.pool_size" = 4

[arms.b]
"train.pool_size" = 0
"""

BAD = {
    "unknown-key": (GOOD.format(extra="poolsize = 3"), "unknown key 'poolsize'"),
    "wrong-type": (
        GOOD.format(extra="").replace("seeds = 2", 'seeds = "two"'),
        "seeds: expected an integer N or a list",
    ),
    "wrong-type-question": (
        GOOD.format(extra="").replace('question = "Does the pool matter?"', "question = 3"),
        "question:",
    ),
    "arm-key": (
        GOOD.format(extra="").replace('[arms.b]\n"train.pool_size"', '[arms.b]\n"train.poolsize"'),
        "arms.b: unknown config key 'train.poolsize'; valid keys in 'train': seed, batch_size, pool_size",
    ),
    "arm-value": (
        GOOD.format(extra="").replace('"train.pool_size" = 0', '"train.pool_size" = -1'),
        "arms.b: bad value",
    ),
    "no-control": (GOOD.format(extra="").replace('control = "a"', ""), "control: missing"),
    "control-not-arm": (
        GOOD.format(extra="").replace('control = "a"', 'control = "c"'),
        "control: 'c' is not an arm",
    ),
    "duplicate-arm": (
        GOOD.format(extra="") + '\n[arms.a]\n"train.pool_size" = 1\n',
        "Cannot declare ('arms', 'a') twice",
    ),
    "empty-seeds": (
        GOOD.format(extra="").replace("seeds = 2", "seeds = []"),
        "seeds: the seed list is empty",
    ),
    "missing-data": (
        GOOD.format(extra='data = "no/such/folder"'),
        "data: folder not found: 'no/such/folder'",
    ),
    "slash-arm": (GOOD.format(extra="").replace("[arms.b]", '[arms."x/y"]'), "arms.x/y: unsafe name"),
    "dotdot-arm": (GOOD.format(extra="").replace("[arms.b]", '[arms."a..b"]'), "arms.a..b: unsafe name"),
    "leading-dot-arm": (GOOD.format(extra="").replace("[arms.b]", '[arms.".hidden"]'), "unsafe name"),
    "seed-override": (
        GOOD.format(extra="").replace('"train.pool_size" = 0', '"train.seed" = 1'),
        "train.seed",
    ),
    "bad-metric": (GOOD.format(extra='[metrics]\nprimary = "nope"'), "metrics.primary: 'nope'"),
    "compare-unknown-arm": (GOOD.format(extra='compare = [["b", "z"]]'), "compare[0]: 'z' is not an arm"),
    "compare-with-control": (
        GOOD.format(extra='compare = [["b", "a"]]'),
        "compare[0]: every arm is already compared with the control 'a'",
    ),
    "compare-not-a-pair": (GOOD.format(extra='compare = [["b"]]'), "compare[0]: expected [arm, reference]"),
    "margin-undeclared-metric": (
        GOOD.format(extra='[metrics]\nmargin = { "kid_AtoB" = 0.1 }'),
        "metrics.margin: 'kid_AtoB' is not a declared metric",
    ),
    "margin-negative": (
        GOOD.format(extra='[metrics]\nmargin = { "zebra.stripe_AtoB" = -0.1 }'),
        "metrics.margin.zebra.stripe_AtoB: expected greater than 0",
    ),
    "failure-not-a-number": (
        GOOD.format(extra='[metrics]\nfailure = { "zebra.stripe_AtoB" = "low" }'),
        "metrics.failure.zebra.stripe_AtoB: expected a valid number",
    ),
    "max-seeds-below-seeds": (GOOD.format(extra="max_seeds = 1"), "max_seeds: 1 is below the 2 seeds"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    text, expected = BAD[case]
    spec = tmp_path / f"{case}.toml"
    spec.write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["harness", "run", str(spec), "--wandb", "disabled"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {spec}: "), err
    assert expected in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize("case", ["duplicate-arm"])
def test_bad_spec_through_the_installed_script(case, tmp_path):
    text, expected = BAD[case]
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    out = subprocess.run([*HARNESS, "run", str(spec)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert (
        out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {spec}: ") and expected in out.stderr
    )
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def test_set_may_not_erase_an_arm_difference(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text(GOOD.format(extra=""))
    with pytest.raises(UserError, match="--set train.pool_size: arm 'a'"):
        build_plan(load_spec(spec), tmp_path / "runs", sets={"train.pool_size": "3"})


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_specs_load_with_a_question(path):
    kind = "sweep" if 'kind = "sweep"' in path.read_text() else "ablation"
    if kind == "sweep":
        with pytest.raises(UserError, match="harness sweep"):
            load_spec(path)
        return
    spec = load_spec(path)
    assert spec.question.endswith("?") and spec.control in spec.arms and spec.seeds == [0, 1, 2, 3, 4]
    plan = build_plan(spec, Path("runs"))
    assert len({u.key for u in plan.units}) == len(spec.arms) * 5  # every arm resolves to a distinct config
    assert spec.max_seeds == 15 and spec.margins[spec.primary] > 0  # declared before the runs, for TOST
    from harness.report.planning import margin_lines

    lines = margin_lines(spec, plan.folder, plan.primary, list(plan.secondary))
    assert lines[1].startswith(f"  {spec.primary}: margin ")  # the primary's family comes first


def test_plan_precedence_seeds_and_hash_in_the_folder_name(tmp_path):
    spec_path = tmp_path / "t.toml"
    spec_path.write_text(GOOD.format(extra='iterations = 7\n[base]\n"loss.lambda_identity" = 0.0'))
    plan = build_plan(load_spec(spec_path), tmp_path / "runs", sets={"train.log_every": "3"})
    assert [(u.arm, u.seed) for u in plan.units] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    u = plan.units[0]
    assert u.cfg.train.max_iters == 7 and u.cfg.loss.lambda_identity == 0.0 and u.cfg.train.log_every == 3
    assert u.cfg.train.pool_size == 4 and u.cfg.model.ngf == 4  # arm over preset (smoke)
    assert u.key == f"a-s0-{u.cfg.digest()}" and u.run_dir == tmp_path / "runs" / "t" / u.key
    # A changed spec that changes a resolved config is a new run folder, never the old result.
    spec_path.write_text(GOOD.format(extra="iterations = 8"))
    again = build_plan(load_spec(spec_path), tmp_path / "runs")
    assert again.units[0].key != u.key


def test_compare_pairs_reach_experiment_json(tmp_path):
    spec_path = tmp_path / "t.toml"
    spec_path.write_text(GOOD.format(extra='compare = [["c", "b"]]') + '\n[arms.c]\n"train.pool_size" = 1\n')
    spec = load_spec(spec_path)
    assert spec.compare == [("c", "b")]
    record = build_plan(spec, tmp_path / "runs").experiment_record("harness run t")
    assert record["compare"] == [["c", "b"]] and record["control"] == "a"


def test_btoa_metrics_are_recorded_under_original_domain_names():
    raw = {"translation_AtoB": 0.9, "kid_BtoA_std": 0.1, "cycle_l1_A": 0.2, "zebra.stripe_AtoB": 0.7, "x": 1}
    assert dataset_names(raw, "AtoB") == raw
    assert dataset_names(raw, "BtoA") == {
        "translation_BtoA": 0.9,
        "kid_AtoB_std": 0.1,
        "cycle_l1_B": 0.2,
        "zebra.stripe_AtoB": 0.7,  # task metrics already use the data set's directions
        "x": 1,
    }


def test_queue_requeues_a_unit_whose_worker_died(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text(GOOD.format(extra=""))
    plan = build_plan(load_spec(spec), tmp_path / "runs")
    queue = Queue("t", None, plan.folder)
    state = queue.sync(plan.units, done=set())
    assert len(state["queued"]) == 4
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    claim = _claim(queue, f"{socket.gethostname()}:{int(dead.stdout)}")
    assert claim == plan.units[0].key
    alive = _claim(queue, f"{socket.gethostname()}:{os.getpid()}")
    assert alive is not None
    state = Queue("t", None, plan.folder).sync(plan.units, done={plan.units[3].key})
    assert state["running"] == [plan.units[1].key]  # this process is alive: its claim stands
    assert sorted(state["queued"]) == sorted(u.key for u in plan.units[:3] if u is not plan.units[1])
    assert state["done"] == [plan.units[3].key]
    keys = []
    while (c := _claim(queue, "h:1")) is not None:
        keys.append(c)
    assert sorted(keys) == sorted([plan.units[0].key, plan.units[2].key, plan.units[3].key])


def test_margins_failure_and_max_seeds_reach_experiment_json(tmp_path):
    spec_path = tmp_path / "t.toml"
    extra = 'max_seeds = 6\n[metrics]\nmargin = { "zebra.stripe_AtoB" = 0.05 }\n'
    extra += 'failure = { "zebra.stripe_AtoB" = 0.2 }'
    spec_path.write_text(GOOD.format(extra=extra))
    spec = load_spec(spec_path)
    assert spec.margins == {"zebra.stripe_AtoB": 0.05} and spec.failure_thresholds == {
        "zebra.stripe_AtoB": 0.2
    }
    assert spec.max_seeds == 6
    record = build_plan(spec, tmp_path / "runs", seeds=[0, 1, 2, 3]).experiment_record("harness run t")
    assert record["metrics"]["margin"] == {"zebra.stripe_AtoB": 0.05} and record["max_seeds"] == 6
    assert record["first_seeds"] == 2  # the sequential design's first look: the spec's seeds, not this plan's


def test_until_decided_needs_max_seeds(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(GOOD.format(extra=""))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["harness", "run", str(spec), "--until-decided"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2 and "sets no max_seeds" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.toml"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(GOOD.format(extra='data = "synth:zebra"'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.parent / f"{tmp_path.name}-cache"))  # the probe's cache
    monkeypatch.setattr(sys, "argv", ["harness", "run", str(spec), "--dry-run", "--seeds", "3"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.count("  todo  ") == 6 and "12 iterations" in out and "measured here: train step" in out
    assert "no metric declares a margin (metrics.margin)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.toml"]


def test_queued_units_left_out_of_a_changed_plan_are_dropped(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text(GOOD.format(extra=""))
    five = build_plan(load_spec(spec), tmp_path / "runs", seeds=[0, 1, 2, 3, 4])
    Queue("t", None, five.folder).sync(five.units, done=set())
    two = build_plan(load_spec(spec), tmp_path / "runs", seeds=[0, 1])
    queue = Queue("t", None, two.folder)
    assert len(queue.sync(two.units, done=set())["queued"]) == 4
    keys = []
    while (c := _claim(queue, "h:1")) is not None:
        keys.append(c)
    assert sorted(keys) == sorted(u.key for u in two.units)


def _folder_data(root: Path, n_train: int) -> Path:
    from PIL import Image

    for part, n in (("trainA", n_train), ("trainB", n_train), ("testA", 2), ("testB", 2)):
        (root / part).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (i % 256, 90, 30)).save(root / part / f"{i}.png")
    return root


def test_a_budget_in_iterations_fits_the_epochs_to_the_data(tmp_path):
    """The cpu preset's 2,000 iterations stay 2,000 on 60 images (34 epochs, not 4 epochs = 240 iterations);
    ``budget_in = "epochs"`` keeps the preset's 4 epochs."""
    from harness.engine.plan import budget

    data = _folder_data(tmp_path / "photos", 60)
    spec_path = tmp_path / "t.toml"
    text = GOOD.format(extra='[metrics]\nfallback = "translation_AtoB"').replace('"smoke"', '"cpu"')
    spec_path.write_text(text)
    unit = build_plan(load_spec(spec_path), tmp_path / "runs", data=str(data)).units[0]
    assert (unit.cfg.optim.n_epochs, unit.cfg.optim.n_epochs_decay) == (17, 17)
    assert budget(unit.cfg) == {"iterations": 2000, "epochs": 33.33, "images": 60}
    spec_path.write_text(text.replace('control = "a"', 'control = "a"\nbudget_in = "epochs"'))
    unit = build_plan(load_spec(spec_path), tmp_path / "runs", data=str(data)).units[0]
    assert budget(unit.cfg) == {"iterations": 240, "epochs": 4, "images": 60}


def test_fallback_margins_and_max_seeds_reach_the_plan_and_experiment_json(tmp_path):
    data = _folder_data(tmp_path / "photos", 4)
    spec_path = tmp_path / "t.toml"
    metrics = (
        '[metrics]\nprimary = "zebra.stripe_AtoB"\nsecondary = ["kid_AtoB", "zebra.background_AtoB"]\n'
        'fallback = "translation_AtoB"\nmargin = { "zebra.stripe_AtoB" = 0.05, kid_AtoB = 0.5 }\n'
        "failure = { translation_AtoB = 0.1 }"
    )
    spec_path.write_text(GOOD.format(extra=f"max_seeds = 20\n{metrics}"))
    spec = load_spec(spec_path)
    assert spec.margins == {"zebra.stripe_AtoB": 0.05, "kid_AtoB": 0.5} and spec.max_seeds == 20
    assert spec.failure_thresholds == {"translation_AtoB": 0.1}
    synth = build_plan(spec, tmp_path / "runs")
    assert synth.primary == "zebra.stripe_AtoB" and synth.notes == ()
    photos = build_plan(spec, tmp_path / "runs", data=str(data))
    assert photos.primary == "translation_AtoB" and photos.secondary == ("kid_AtoB",)
    record = photos.experiment_record("harness run t")
    assert record["metrics"]["primary"] == "translation_AtoB" and record["max_seeds"] == 20
    assert (
        record["metrics"]["margin"] == spec.margins and "the spec's fallback" in record["metrics"]["notes"][0]
    )
    assert "zebra.background_AtoB" in record["metrics"]["notes"][1]
    assert build_plan(spec, tmp_path / "runs", data=str(data), primary="kid_AtoB").primary == "kid_AtoB"
