"""The run-time estimator: probe, cache, per-iteration cost, queue order and the more-than-a-day advice."""

from __future__ import annotations

import pytest

from cyclegan.atomic import atomic_write_json
from cyclegan.config import resolve
from harness.engine import estimate


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def entry(step: float, data: float | None = None, startup: float = 0.0, first: float = 0.0) -> dict:
    return {
        "step_seconds": step,
        "data_seconds": data,
        "startup_seconds": startup,
        "first_call_extra_seconds": first,
        "measured_at": 0,
    }


def test_a_real_probe_is_cached_per_config_and_worker_count(monkeypatch) -> None:
    monkeypatch.setattr(estimate, "PROBE_SECONDS", 1.0)  # the probe's children get it as an argument
    cfg = resolve("smoke")
    first = estimate.throughput(cfg, 1)
    assert first is not None and first["step_seconds"] > 0 and first["concurrent"] == 1
    assert estimate.cache_file().is_file()
    calls = []
    monkeypatch.setattr(estimate, "probe", lambda *a: calls.append(a) or entry(1.0))
    assert estimate.throughput(cfg, 1) == first  # cached: no second probe
    assert estimate.throughput(resolve("smoke", {"train.seed": 5}), 1) == first  # seeds do not change cost
    assert not calls
    assert estimate.throughput(cfg, 2, measure=False) == first  # status: any worker count, no probe
    estimate.throughput(resolve("smoke", {"data.crop_size": 8, "data.load_size": 8}), 1)
    assert len(calls) == 1  # another crop size is another architecture cost


def test_a_probe_taken_on_a_busier_or_quieter_machine_is_taken_again(monkeypatch) -> None:
    """A probe measured while other work loaded the cores more (less) than now would make every estimate too
    long (short)."""
    import time

    cfg = resolve("smoke")
    key = estimate.config_key(cfg)
    busy = {**entry(4.0), "measured_at": time.time(), "load": 4.0, "concurrent": 1}
    atomic_write_json(estimate.cache_file(), {key: {"1": busy}})
    monkeypatch.setattr(estimate.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(estimate, "probe", lambda *a: {**entry(1.0), "measured_at": time.time(), "load": 1.5})
    assert estimate.throughput(cfg, 1)["step_seconds"] == 1.0  # load 4 before it vs 0.5 now: probed again
    assert estimate.throughput(cfg, 1)["step_seconds"] == 1.0  # the new probe (1.5 before it) is kept
    monkeypatch.setattr(estimate.os, "getloadavg", lambda: (3.0, 3.0, 3.0))  # busier now than then
    assert estimate.throughput(cfg, 1, measure=False)["step_seconds"] == 1.0  # status takes what is cached
    monkeypatch.setattr(estimate, "probe", lambda *a: {**entry(3.0), "measured_at": time.time(), "load": 3.5})
    assert estimate.throughput(cfg, 1)["step_seconds"] == 3.0


def test_iteration_cost_adds_loading_or_overlaps_it_with_loader_workers() -> None:
    cfg = resolve("smoke")
    assert estimate.iteration_seconds(entry(0.04, data=0.01), cfg) == pytest.approx(0.05)
    assert estimate.iteration_seconds(entry(0.04), cfg) == pytest.approx(0.04)
    loaders = resolve("smoke", {"data.num_workers": 2})
    assert estimate.iteration_seconds(entry(0.04, data=0.2), loaders) == pytest.approx(0.1)
    assert estimate.iteration_seconds(entry(0.04, data=0.01), loaders) == pytest.approx(0.04)


def test_plan_takes_runs_in_queue_order_on_the_first_free_worker(monkeypatch) -> None:
    calls, probed = [], entry(0.1, startup=2.0)
    monkeypatch.setattr(estimate, "throughput", lambda cfg, *a, **k: calls.append(0) or probed)
    cfg = resolve("smoke")
    runs = [(cfg, 100), (cfg, 100), (cfg, 300)]  # 12 s, 12 s, 32 s
    assert estimate.plan_seconds(runs, 1) == pytest.approx(56.0)
    assert len(calls) == 1  # one look-up (or probe) per config, not one per run
    assert estimate.plan_seconds(runs, 2) == pytest.approx(44.0)  # the third run waits for a free worker
    assert estimate.plan_seconds(runs, 3) == pytest.approx(32.0)


def test_more_than_a_day_says_so_and_what_would_fit() -> None:
    assert estimate.too_long(23 * 3600, "paper") is None
    line = estimate.too_long(21323 * 3600, "paper")
    assert line is not None and "888.5 days" in line and "--preset paper is meant for a GPU" in line
    assert "--preset cpu" in line
    line = estimate.too_long(2 * 86400, "cpu")
    assert line is not None and "fewer seeds" in line


def test_status_rate_before_two_logs_comes_from_the_cached_probe(tmp_path, monkeypatch) -> None:
    from harness.engine import status

    cfg = resolve("smoke")
    assert status._cached_estimate(tmp_path, 100, 0) == (None, 0.0)  # no config.json: nothing to go on
    atomic_write_json(tmp_path / "config.json", cfg.to_dict())
    assert status._cached_estimate(tmp_path, 100, 0) == (None, 0.0)  # nothing cached, and status never probes
    seen = []
    monkeypatch.setattr(
        estimate, "throughput", lambda c, workers=1, measure=True: seen.append(measure) or entry(0.25)
    )
    assert status._cached_estimate(tmp_path, 100, 0)[0] == pytest.approx(4.0)
    assert seen == [False]


def test_plan_counts_evaluations_and_the_classifier_warm_up_once_per_data_set(tmp_path, monkeypatch) -> None:
    """Each run: building its Evaluator, one evaluation every eval_every before the end and one at the end;
    before the workers start, once per data set: the classifier's training while it is not cached."""
    clf_file = tmp_path / "classifier.pt"
    probed = {
        **entry(0.1, startup=2.0),
        "eval_setup_seconds": 0.5,
        "eval_seconds": 1.5,
        "classifier_seconds": 30.0,
        "classifier_path": str(clf_file),
    }
    monkeypatch.setattr(estimate, "throughput", lambda cfg, workers=1, measure=True: probed)
    cfg = resolve("smoke", {"train.eval_every": 40})
    assert [estimate.evaluations(cfg, n) for n in (39, 40, 41, 100)] == [1, 1, 2, 3]
    assert estimate.evaluations(resolve("smoke", {"train.eval_every": 0}), 100) == 1
    run = 2.0 + 0.5 + 100 * 0.1 + 3 * 1.5  # start-up, Evaluator, iterations, evaluations at 40, 80, 100
    assert estimate.run_seconds(probed, cfg, 100) == pytest.approx(run)
    other_data = resolve("smoke", {"train.eval_every": 40, "data.synth_n_test": 7})
    runs = [(cfg, 100), (cfg, 100), (other_data, 100)]
    warm = 2 * (30.0 + 0.5)  # two data sets, neither classifier cached
    assert estimate.plan_seconds(runs, 2) == pytest.approx(warm + 2 * run)
    clf_file.write_bytes(b"cached")
    assert estimate.plan_seconds(runs, 2) == pytest.approx(2 * 0.5 + 2 * run)


def test_status_eta_adds_the_evaluations_still_to_come(tmp_path, monkeypatch) -> None:
    from harness.engine import status

    cfg = resolve("smoke", {"train.eval_every": 40})
    atomic_write_json(tmp_path / "config.json", cfg.to_dict())
    assert status._cached_estimate(tmp_path, 100, 0) == (None, 0.0)  # nothing cached: nothing known
    probed = {**entry(0.25), "eval_seconds": 2.0}
    monkeypatch.setattr(estimate, "throughput", lambda c, workers=1, measure=True: probed)
    assert status._cached_estimate(tmp_path, 100, 0)[1] == pytest.approx(6.0)  # at 40, 80 and the end
    assert status._cached_estimate(tmp_path, 100, 2)[1] == pytest.approx(2.0)  # only the final one left


def test_the_evaluation_probe_times_scoring_without_training_the_classifier(folder_dataset) -> None:
    """The probe measures a run's Evaluator, one evaluation and the classifier's training cost, but must not
    pay (or write) the training it estimates."""
    from cyclegan.model import CycleGAN

    cfg = resolve("smoke", {"data.dataset": str(folder_dataset)})
    timed = estimate._probe_evaluation(cfg, CycleGAN(cfg))
    assert timed["eval_setup_seconds"] > 0 and timed["eval_seconds"] > 0 and timed["classifier_seconds"] > 0
    assert timed["classifier_path"].startswith(str(folder_dataset.resolve()))
    assert not (folder_dataset / ".harness-cache").exists() or not list(
        (folder_dataset / ".harness-cache").glob("classifier-*")
    )
