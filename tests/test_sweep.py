"""Sweeps end to end at the smoke preset: journal-file workers, pruning, increments, report; spec errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from harness.cli import app
from harness.engine.queue import open_storage
from harness.errors import UserError
from harness.sweep.spec import load_spec, parse_spec
from harness.sweep.study import params_to_overrides
from tests.conftest import IDENTITY_SWEEP_TAIL

ROOT = Path(__file__).resolve().parents[1]
LAMBDA = ROOT / "experiments" / "sweep-lambda.toml"
PRUNE_ALL = (
    """
name = "prune-all"
kind = "sweep"
preset = "smoke"
data = "synth:seasons"
seeds = [0]
[sweep]
trials = 2
pruner = "threshold"
pruner_options = { upper = -1.0 }  # an L1 distance is never below 0: every trial is pruned at its first eval
"""
    + IDENTITY_SWEEP_TAIL
)


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")


def _study(store: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, store / name / "queue.journal"))


def test_sweep_lambda_two_workers_report_and_confirmation(tmp_path):
    """The shipped spec at the smoke preset: 6 trials over 2 worker processes, then 2 confirmation seeds."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "harness", "sweep", "lambda", "--preset", "smoke", "--trials", "6",
           "--workers", "2",
           "--threads", "1", "--confirm", "2"]  # fmt: skip
    # The spec is found by name in ./experiments: run from the repository's copy of it.
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "sweep-lambda.toml").write_text(LAMBDA.read_text())
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(tmp_path / "runs", "sweep-lambda")
    trials = study.get_trials()
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 6
    assert {t.user_attrs["worker"] for t in counted} == {w for w in {t.user_attrs["worker"] for t in counted}}
    assert len({t.user_attrs["worker"] for t in counted}) == 2  # both workers took trials
    for t in counted:  # the tie: one sampled lambda sets both cycle weights
        assert 1.0 <= t.params["loss.lambda_A"] <= 30.0 and 0.0 <= t.params["loss.lambda_identity"] <= 1.0
        (run_dir,) = (tmp_path / "runs" / "sweep-lambda").glob(f"trial-{t.number}-s0-*")
        cfg = json.loads((run_dir / "config.json").read_text())
        assert cfg["loss"]["lambda_A"] == cfg["loss"]["lambda_B"] == pytest.approx(t.params["loss.lambda_A"])
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == ("done" if t.state == TrialState.COMPLETE else "pruned")
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(summary["metrics"]["seasons.l1_AtoB"])
    best = study.best_trial
    report = tmp_path / "reports" / "sweep-lambda"
    for name in ("report.md", "report.html", "trials.csv", "runs.csv", "history-seasons.l1_AtoB.png"):
        assert (report / name).is_file(), name
    md = (report / "report.md").read_text()
    assert f"Best trial: {best.number} with seasons.l1\\_AtoB = " in md
    assert "--set loss.lambda_A=" in md and "loss.lambda_B=" in md and "loss.lambda_identity=" in md
    assert (
        "Best config vs default re-run with the same fresh seeds" in md
        and "| seasons.l1\\_AtoB | minimize | 2 / 2 |" in md
    )
    assert "too few seeds for a verdict (2 / 2; at least 3 per arm)" in md  # no better/worse claim on n = 2
    assert "data:image/png;base64," in (report / "report.html").read_text()
    index = (tmp_path / "reports" / "index.md").read_text()
    assert "[sweep-lambda](sweep-lambda/report.md)" in index
    rows = list(csv.DictReader((report / "trials.csv").open()))
    n_pruned = sum(r["state"] == "pruned" for r in rows)
    assert f"- **runs:** 6 trials: {6 - n_pruned} finished, {n_pruned} pruned (stopped early" in index
    assert len(rows) == 6 and {r["state"] for r in rows} <= {"complete", "pruned"}
    confirm = json.loads((tmp_path / "runs" / "sweep-lambda" / "confirm.json").read_text())
    assert confirm["seeds"] == [1, 2] and confirm["best_trial"] == best.number
    for arm, runs in confirm["runs"].items():
        for run in runs:
            cfg = json.loads((tmp_path / "runs" / "sweep-lambda" / run / "config.json").read_text())
            expect = 10.0 if arm == "confirm-default" else best.params["loss.lambda_A"]
            assert cfg["loss"]["lambda_A"] == pytest.approx(expect)
    # The confirmation is an ablation's queue in the sweep's storage, drained by worker processes.
    confirm_queue = optuna.load_study(
        study_name="sweep-lambda.confirm",
        storage=open_storage(None, tmp_path / "runs/sweep-lambda/queue.journal"),
    )
    drained = confirm_queue.get_trials()
    assert sorted(t.user_attrs["unit"] for t in drained) == sorted(sum(confirm["runs"].values(), []))
    assert {t.state for t in drained} == {TrialState.COMPLETE}
    assert "[worker 0] start  confirm-" in proc.stdout + proc.stderr  # a worker process, not the sweep's

    # Running it again adds trials to the same study (an increment over what is finished or pruned).
    more = [
        "sweep",
        "lambda",
        "--preset",
        "smoke",
        "--trials",
        "1",
        "--threads",
        "1",
        "--confirm",
        "0",
        "--no-report",
    ]
    result = CliRunner().invoke(app, more)
    assert result.exit_code == 0, result.output
    assert "target 7 finished or pruned trials" in result.output
    trials = _study(tmp_path / "runs", "sweep-lambda").get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 7
    assert trials[-1].params not in [t.params for t in trials[:-1]]  # a rerun samples with a new seed
    # `harness worker NAME` joins a sweep as a sweep worker (the study is complete: it has nothing to do).
    result = CliRunner().invoke(app, ["worker", "lambda", "--threads", "1", "--wandb", "disabled"])
    assert result.exit_code == 0, result.output
    assert "0 finished, 0 pruned, 0 failed" in result.output


def test_pruner_prunes_and_marks_the_run(tmp_path):
    spec = tmp_path / "sweep-prune.toml"
    spec.write_text(PRUNE_ALL)
    result = CliRunner().invoke(
        app, ["sweep", str(spec), "--threads", "1", "--wandb", "disabled", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    trials = _study(tmp_path / "runs", "prune-all").get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    for t in trials:
        assert t.user_attrs["pruned_at"] == {"seed": 0, "iteration": 6}
        assert list(t.intermediate_values) == [6]  # reported at the first eval, pruned there
        (run_dir,) = (tmp_path / "runs" / "prune-all").glob(f"trial-{t.number}-s0-*")
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "pruned"
        assert json.loads((run_dir / "run.json").read_text())["status"] == "pruned"
    status = CliRunner().invoke(app, ["status", "prune-all", "--json"])  # a sweep's runs are its run folders
    assert status.exit_code == 0, status.output
    assert [r["note"] for r in json.loads(status.output)["runs"]] == ["pruned", "pruned"]
    # The report rebuilds from the store (and says what pruning saved).
    result = CliRunner().invoke(app, ["report", "prune-all"])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "reports" / "prune-all" / "report.md").read_text()
    assert "0 finished, 2 pruned" in md and "iterations saved:** 12 (50% of the sweep run unpruned)" in md


def test_two_objectives_give_a_pareto_front_without_pruning(tmp_path):
    spec = tmp_path / "sweep-pareto.toml"
    text = (ROOT / "experiments" / "sweep-lambda-pareto.toml").read_text()
    spec.write_text(text.replace('pruner = "none"', 'pruner = "median"'))  # ignored: several objectives
    args = ["sweep", str(spec), "--preset", "smoke", "--trials", "2", "--threads", "1", "--wandb", "disabled"]
    result = CliRunner().invoke(app, [*args, "--confirm", "0"])
    assert result.exit_code == 0, result.output
    trials = _study(tmp_path / "runs", "sweep-lambda-pareto").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and all(len(t.values) == 2 for t in trials)
    assert all(not t.intermediate_values for t in trials)  # nothing reported: no pruning
    report = tmp_path / "reports" / "sweep-lambda-pareto"
    md = (report / "report.md").read_text()
    assert "pruner none (off: Optuna cannot prune several objectives)" in md and "Pareto front: " in md
    assert (report / "pareto.png").stat().st_size > 1000


def test_shipped_specs_parse():
    spec = load_spec(LAMBDA)
    assert spec.sampler == "tpe" and spec.pruner == "median" and spec.metrics == ["seasons.l1_AtoB"]
    assert params_to_overrides(spec, {"loss.lambda_A": 3.0, "loss.lambda_identity": 0.1}) == {
        "loss.lambda_A": 3.0, "loss.lambda_B": 3.0, "loss.lambda_identity": 0.1}  # fmt: skip
    pareto = load_spec(ROOT / "experiments" / "sweep-lambda-pareto.toml")
    assert (
        pareto.multi_objective and pareto.pruner == "none" and pareto.directions == ["maximize", "minimize"]
    )
    assert pareto.params[0].tie == ("loss.lambda_B",)  # same_as folds into the source parameter


BASE = {"kind": "sweep", "preset": "smoke", "data": "synth:seasons",
        "params": {"loss.lambda_A": {"low": 1.0, "high": 30.0, "log": True}},
        "objectives": [{"metric": "seasons.l1_AtoB", "direction": "minimize"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"loss.lambda_X": {"low": 1, "high": 2}}}, "params.loss.lambda_X: unknown config key"),
        ({"params": {"loss.lambda_A": {"low": 0.0, "high": 2.0, "log": True}}}, "params.loss.lambda_A.low:"),
        ({"params": {"loss.lambda_A": {"low": 1, "high": 2000}}}, "params.loss.lambda_A: bad value 2000"),
        (
            {"params": {"loss.lambda_B": {"same_as": "loss.lambda_Q"}, **BASE["params"]}},
            "params.loss.lambda_B.same_as:",
        ),
        (
            {"objectives": [{"metric": "zebra.stripe_AtoB"}]},
            "objectives[0].metric: unknown metric 'zebra.stripe_AtoB'",
        ),
        ({"objectives": [{"metric": "seasons.l1_AtoB", "direction": "down"}]}, "objectives[0].direction:"),
        (
            {"objectives": [{"metric": "seasons.l1_AtoB", "margin": -0.1}]},
            "objectives[0].margin: expected greater than 0",
        ),
        ({"sweep": {"pruner": "asha"}}, "sweep.pruner: bad value 'asha'"),
        (
            {"sweep": {"pruner_options": {"lower": 1}}},
            "sweep.pruner_options.lower: not an option of the median",
        ),
        ({"base": {"loss.lambda_A": 5}}, "base.loss.lambda_A: 'loss.lambda_A' is swept"),
        ({"kind": "ablation"}, "kind: 'ablation' specs run with `harness run`, not `harness sweep`"),
        ({"trials": 3}, "unknown key 'trials'"),
        ({"objectives": [{"metric": "fid_inception_AtoB"}]}, "needs eval.inception_weights in [base]"),
    ],
)
def test_spec_errors_name_file_and_key(change, message):
    with pytest.raises(UserError) as err:
        parse_spec({**BASE, **change}, Path("experiments/sweep-bad.toml"))
    text = str(err.value)
    assert text.startswith("experiments/sweep-bad.toml: ") and message in text and "\n" not in text


def test_bad_spec_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """Through ``harness.cli.main`` (the console script's entry): one line on stderr, exit code 2."""
    from harness.cli import main

    (tmp_path / "sweep-bad.toml").write_text(
        LAMBDA.read_text().replace('sampler = "tpe"', 'sampler = "grid"')
    )
    monkeypatch.setattr(sys, "argv", ["harness", "sweep", str(tmp_path / "sweep-bad.toml")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "sweep.sampler: bad value 'grid'" in err
    assert not (tmp_path / "runs").exists()  # nothing written before the error


def _journal_study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(None, tmp_path / "q.journal")
    return optuna.create_study(study_name="s", storage=storage)


def test_journal_dead_worker_trial_is_requeued_with_its_unit(tmp_path):
    """On the journal file a RUNNING trial whose worker pid is gone is failed and re-queued with its unit."""
    from harness.engine.queue import reap
    from harness.engine.store import worker_id
    from harness.sweep.study import unit_number

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = _journal_study(tmp_path)
    trial = study.ask()
    trial.suggest_float("loss.lambda_A", 1.0, 30.0, log=True)
    trial.set_user_attr("unit", trial.number)
    trial.set_user_attr("worker", worker_id().rsplit(":", 1)[0] + f":{dead.pid}")
    alive = study.ask()
    alive.set_user_attr("worker", worker_id())  # this process: alive, left alone
    assert reap(study) == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.WAITING}
    retry = study.ask()  # a worker takes the queued retry: same parameters, same unit (same run folders)
    assert retry.number == 2 and unit_number(retry) == 0 and retry.params == trial.params


def test_a_trial_past_the_target_is_surplus(tmp_path):
    from harness.sweep.study import add_to_target, is_surplus, live

    study = _journal_study(tmp_path)
    assert add_to_target(study, 2) == 2
    first, second, third = study.ask(), study.ask(), study.ask()  # a race: three workers asked at once
    assert not is_surplus(study, first.number) and not is_surplus(study, second.number)
    assert is_surplus(study, third.number)
    study.tell(first, state=TrialState.FAIL)  # a failed trial frees its slot: the next one may run
    assert not is_surplus(study, third.number)
    assert len(live(study.get_trials())) == 2


def test_interrupted_trial_is_queued_again_with_its_unit(tmp_path):
    """Ctrl-C fails the running trial (Optuna); the worker queues it again: a rerun resumes its runs."""
    from harness.engine.queue import requeue
    from harness.sweep.study import unit_number

    study = _journal_study(tmp_path)
    trial = study.ask()
    trial.suggest_float("loss.lambda_identity", 0.0, 1.0)
    trial.set_user_attr("unit", trial.number)
    study.tell(trial, state=TrialState.FAIL)
    requeue(study, [trial.number])
    again = study.ask()
    assert again.number == 1 and unit_number(again) == 0 and again.params == trial.params


def test_a_trial_that_raises_is_recorded_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """The first training raises: that trial is FAIL with its error (trial and run folder), then exactly the
    target number of trials finish."""
    import harness.engine.worker as engine_worker

    real, calls = engine_worker.train, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in the training loop")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_worker, "train", flaky)
    spec = tmp_path / "sweep-flaky.toml"
    text = PRUNE_ALL.replace('pruner = "threshold"', 'pruner = "none"').replace('name = "prune-all"', "")
    text = text.replace("pruner_options = { upper = -1.0 }", "")
    spec.write_text(text)  # no name: the file's stem names the sweep
    args = ["sweep", str(spec), "--threads", "1", "--wandb", "disabled", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trials = _study(tmp_path / "runs", "sweep-flaky").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["error"] == "RuntimeError: boom in the training loop"
    (run_dir,) = (tmp_path / "runs" / "sweep-flaky").glob("trial-0-s0-*")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "RuntimeError: boom in the training loop"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def test_best_value_at_the_edge_of_its_range_is_flagged():
    from harness.sweep.report import edge_notes

    params = {
        "loss.lambda_A": {"type": "float", "low": 1.0, "high": 30.0, "log": True},
        "loss.lambda_identity": {"type": "float", "low": 0.0, "high": 1.0, "log": False},
        "model.netD": {"type": "categorical", "choices": ["patch", "scalar"]},
    }
    # 29.12 is 99 % of the way up the log range; 0.7154 is inside; categorical params have no edge
    best = {"loss.lambda_A": 29.12, "loss.lambda_identity": 0.7154, "model.netD": "patch"}
    assert edge_notes(params, best) == [
        "loss.lambda_A = 29.12 is in the top 5% of its range [1, 30] (log scale): the optimum may lie "
        "outside it; widen the range before reading this as the best value"
    ]
    # on a log scale 1.1 is near the bottom of [1, 30]; on a linear one 0.03 of [0, 1] is
    assert "bottom" in edge_notes(params, {"loss.lambda_A": 1.1})[0]
    assert "bottom" in edge_notes(params, {"loss.lambda_identity": 0.03})[0]
    assert edge_notes(params, {"loss.lambda_A": 5.0, "loss.lambda_identity": 0.5}) == []


def test_workers_that_die_leave_exit_1_and_no_confirmation(tmp_path, monkeypatch):
    """Two worker processes that die before any trial: the command says how many trials of the target
    finished, names the dead workers, confirms nothing and exits 1 (it used to exit 0)."""
    import subprocess
    import sys

    import harness.engine.runner as runner

    def dead_workers(*args, **kwargs):
        return [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]) for _ in range(2)]

    monkeypatch.setattr(runner, "spawn", dead_workers)
    spec = tmp_path / "sweep-dead.toml"
    spec.write_text(PRUNE_ALL.replace('name = "prune-all"', 'name = "sweep-dead"'))
    args = ["sweep", str(spec), "--workers", "2", "--wandb", "disabled", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "0 of 2 trials finished or pruned: run the same command again" in result.output
    assert "worker 0 (pid" in result.output and "exited with code 3" in result.output
    assert not (tmp_path / "runs" / "sweep-dead" / "confirm.json").exists()


def test_confirmation_verdict_uses_the_declared_margin() -> None:
    """Four outcomes read off one interval, as in the ablation reports: better, equivalent only when the
    family's interval lies inside the margin (TOST at half its level; the TOST p is statsmodels'
    unequal-variance ttost_ind), inconclusive otherwise, never equivalent without a margin."""
    from statsmodels.stats.weightstats import ttost_ind

    from harness.report import stats
    from harness.sweep.report import _verdict

    def verdict(best: list[float], default: list[float], margin: float | None) -> str:
        c = stats.compare(best, default, arm="best", metric="l1", direction="minimize", confidence=0.95)
        return _verdict(c, margin, 0.05, "s", "95% interval")

    default = [0.0750, 0.0760, 0.0755, 0.0765, 0.0745]
    close = [0.0752, 0.0758, 0.0754, 0.0761, 0.0748]
    assert "better than" in verdict([v - 0.01 for v in default], default, 0.0075)
    assert "equivalent to the default within the declared margin +/-0.0075" in verdict(close, default, 0.0075)
    p_ref = ttost_ind(close, default, -0.0075, 0.0075, usevar="unequal")[0]
    c = stats.compare(close, default, arm="best", metric="l1", direction="minimize")
    assert stats.Welch(c.diff, c.se, c.df).tost_p(0.0075) == pytest.approx(p_ref)
    assert "inconclusive at 5 fresh seeds" in verdict(close, default, 0.0001)
    assert "no margin is declared" in verdict(close, default, None)
    # sweep-lambda's confirmation (2026-12-04): TOST p 0.0497 is below 0.05 but not 0.025, and the 95%
    # interval reaches past -0.0075, so it is not called equivalent
    best = [0.074350, 0.068670, 0.071695, 0.064892, 0.075246]
    paper = [0.075930, 0.079960, 0.071282, 0.063478, 0.069485]
    p_real = ttost_ind(best, paper, -0.0075, 0.0075, usevar="unequal")[0]
    assert 0.025 < p_real < 0.05
    assert "inconclusive at 5 fresh seeds" in verdict(best, paper, 0.0075)
