"""Bad input, table-driven: every case is one line on stderr naming the key or flag, exit code 2, no
traceback, and nothing written (no store, no reports),
on `harness run`, `harness sweep` and their `--dry-run`.

Each case is (spec text or None, command line, a phrase the one line must contain). ``{spec}`` is the case's
spec file, ``{photos}`` a small folder data set (CycleGAN layout). The CLI runs in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from harness import cli

ABLATION = """
name = "t"
question = "Does the pool matter?"
preset = "smoke"
data = "synth:zebra"
control = "a"
seeds = 2
{top}

[base]
{base}

[arms.a]
"train.pool_size" = 4

[arms.b]
"train.pool_size" = 0
{arm}

[metrics]
primary = "zebra.stripe_AtoB"
{metrics}
"""

SWEEP = """
name = "s"
kind = "sweep"
preset = "smoke"
data = "synth:seasons"
seeds = [0]
{top}

[base]
{base}

[sweep]
trials = 2
{sweep}

[params."loss.lambda_A"]
type = "float"
low = 1.0
high = 30.0
{param}

[[objectives]]
metric = "seasons.l1_AtoB"
{objective}
"""


def ablation(top: str = "", base: str = "", arm: str = "", metrics: str = "") -> str:
    return ABLATION.format(top=top, base=base, arm=arm, metrics=metrics)


def sweep(top: str = "", base: str = "", sweep: str = "", param: str = "", objective: str = "") -> str:
    return SWEEP.format(top=top, base=base, sweep=sweep, param=param, objective=objective)


RUN = ["run", "{spec}"]
DRY = ["run", "{spec}", "--dry-run"]
SW = ["sweep", "{spec}"]
SW_DRY = ["sweep", "{spec}", "--dry-run"]
OK, OK_SWEEP = ablation(), sweep()

CASES: dict[str, tuple[str | None, list[str], str]] = {
    # --- the list in issue 17 ---
    "seeds-1e9": (
        ablation().replace("seeds = 2", "seeds = 1000000000"),
        RUN,
        "seeds: expected 1 to 1000 seeds",
    ),
    "identical-arms": (
        ablation().replace('"train.pool_size" = 0', '"train.pool_size" = 4'),
        RUN,
        "arms.b: the same config as arm 'a'",
    ),
    "arm-name-300": (ablation().replace("[arms.b]", f"[arms.{'x' * 300}]"), RUN, "unsafe name 'xxx"),
    "flat-and-nested": (ablation(arm="train = {pool_size = 7}"), RUN, "'train.pool_size' is set twice"),
    "name-help": (ablation().replace('name = "t"', 'name = "--help"'), RUN, "name: unsafe name '--help'"),
    "workers-0": (OK, [*RUN, "--workers", "0"], "'--workers'"),
    "n-layers-D-16px": (
        OK,
        [*RUN, "--set", "model.n_layers_D=5"],
        "model.n_layers_D=5 is too deep for 16 px",
    ),
    "device-tpu": (OK, [*RUN, "--set", "train.device=tpu"], "bad value 'tpu' for 'train.device'"),
    "batch-4096": (
        OK,
        [*RUN, "--set", "train.batch_size=4096"],
        "train.batch_size=4096 is larger than the data",
    ),
    "inception-missing": (
        OK,
        [*RUN, "--set", "eval.inception_weights=/no/such.pth"],
        "eval.inception_weights: no file '/no/such.pth'",
    ),
    "preset-turbo": (OK, [*RUN, "--preset", "turbo"], "--preset: unknown preset 'turbo'"),
    # --- spec keys ---
    "unknown-top-key": (
        ablation(top="poolsize = 3"),
        RUN,
        "poolsize: unknown key 'poolsize'; valid: kind, name",
    ),
    "seeds-string": (
        ablation().replace("seeds = 2", 'seeds = "two"'),
        RUN,
        "seeds: expected an integer N or a list",
    ),
    "seeds-empty": (ablation().replace("seeds = 2", "seeds = []"), RUN, "seeds: the seed list is empty"),
    "seeds-duplicate": (
        ablation().replace("seeds = 2", "seeds = [1, 1]"),
        RUN,
        "seeds: expected up to 1000 distinct",
    ),
    "seeds-negative": (ablation().replace("seeds = 2", "seeds = [-1]"), RUN, "seeds: -1 is not a seed"),
    "seeds-zero": (
        ablation().replace("seeds = 2", "seeds = 0"),
        RUN,
        "seeds: expected 1 to 1000 seeds, got 0",
    ),
    "seeds-bool": (
        ablation().replace("seeds = 2", "seeds = true"),
        RUN,
        "seeds: expected an integer N or a list",
    ),
    "question-int": (
        ablation().replace('question = "Does the pool matter?"', "question = 3"),
        RUN,
        "question: expected a valid string, got 3",
    ),
    "question-missing": (
        ablation().replace('question = "Does the pool matter?"', ""),
        RUN,
        "question: missing",
    ),
    "control-missing": (ablation().replace('control = "a"', ""), RUN, "control: missing"),
    "control-not-arm": (
        ablation().replace('control = "a"', 'control = "c"'),
        RUN,
        "control: 'c' is not an arm; valid: a, b",
    ),
    "one-arm": (ablation().replace('[arms.b]\n"train.pool_size" = 0', ""), RUN, "arms: need at least two"),
    "arm-not-table": (
        ablation()
        .replace('[arms.b]\n"train.pool_size" = 0', "")
        .replace("[arms.a]", "[arms]\nb = 3\n[arms.a]"),
        RUN,
        "arms.b: expected a table of dotted config overrides, got 3",
    ),
    "arm-note-int": (ablation(arm="note = 5"), RUN, "arms.b.note: expected a string, got 5"),
    "arm-unknown-config-key": (
        ablation(arm='"train.poolsize" = 1'),
        RUN,
        "arms.b: unknown config key 'train.poolsize'",
    ),
    "arm-bad-value": (
        ablation().replace('"train.pool_size" = 0', '"train.pool_size" = -1'),
        RUN,
        "arms.b: bad value -1 for 'train.pool_size'",
    ),
    "arm-bool-for-int": (
        ablation().replace('"train.pool_size" = 0', '"train.pool_size" = true'),
        RUN,
        "arms.b: bad value True for 'train.pool_size'",
    ),
    "arm-seed": (ablation(arm='"train.seed" = 3'), RUN, "arms.b: 'train.seed' is set by the spec's `seeds`"),
    "base-seed": (ablation(base='"train.seed" = 3'), RUN, "base: 'train.seed' is set by the spec's `seeds`"),
    "base-device": (ablation(base='"train.device" = "tpu"'), RUN, "base: bad value 'tpu' for 'train.device'"),
    "base-n-layers-D": (
        ablation(base='"model.n_layers_D" = 4'),
        DRY,
        "model.n_layers_D=4 is too deep for 16 px",
    ),
    "base-not-table": (
        ablation().replace("[base]", "").replace('control = "a"', 'control = "a"\nbase = 3'),
        RUN,
        "base: expected a table of dotted config overrides, got 3",
    ),
    "preset-unknown": (
        ablation().replace('preset = "smoke"', 'preset = "turbo"'),
        RUN,
        "preset: bad value 'turbo'; valid: 'paper', 'cpu', 'demo' or 'smoke'",
    ),
    "data-missing-folder": (
        ablation().replace('data = "synth:zebra"', 'data = "no/such/folder"'),
        RUN,
        "data: folder not found: 'no/such/folder'",
    ),
    "data-unknown-task": (
        ablation().replace('data = "synth:zebra"', 'data = "synth:unicorns"'),
        RUN,
        "data: ",
    ),
    "iterations-zero": (
        ablation(top="iterations = 0"),
        RUN,
        "iterations: expected greater than or equal to 1, got 0",
    ),
    "iterations-and-epochs": (
        ablation(top="iterations = 5\nepochs = 5"),
        RUN,
        "iterations: give `iterations` or `epochs`, not both",
    ),
    "iterations-float": (
        ablation(top="iterations = 1.5"),
        RUN,
        "iterations: expected a valid integer, got 1.5",
    ),
    "eval-every-negative": (
        ablation(top="eval_every = -1"),
        RUN,
        "eval_every: expected greater than or equal to 0",
    ),
    "budget-in-unknown": (ablation(top='budget_in = "hours"'), RUN, "budget_in: bad value 'hours'"),
    "primary-unknown": (
        ablation().replace('primary = "zebra.stripe_AtoB"', 'primary = "nope"'),
        RUN,
        "metrics.primary: 'nope' is not a metric",
    ),
    "direction-unknown": (
        ablation(metrics='direction = "up"'),
        RUN,
        "metrics.direction: bad value 'up'; valid: 'maximize' or 'minimize'",
    ),
    "metrics-unknown-key": (
        ablation(metrics="primery = 1"),
        RUN,
        "metrics.primery: unknown key 'primery'; valid:",
    ),
    "secondary-string": (
        ablation(metrics='secondary = "kid_AtoB"'),
        RUN,
        "metrics.secondary: expected a valid list",
    ),
    "margin-unknown-metric": (
        ablation(metrics="margin = { nope = 0.1 }"),
        RUN,
        "metrics.margin.nope: 'nope' is not a metric",
    ),
    "margin-zero": (
        ablation(metrics='margin = { "kid_AtoB" = 0.0 }'),
        RUN,
        "metrics.margin.kid_AtoB: expected greater than 0",
    ),
    "margin-string": (
        ablation(metrics='margin = { "kid_AtoB" = "small" }'),
        RUN,
        "metrics.margin.kid_AtoB: expected a valid number",
    ),
    "failure-unknown-metric": (
        ablation(metrics="failure = { nope = 1.0 }"),
        RUN,
        "metrics.failure.nope: 'nope' is not a metric",
    ),
    "fallback-needs-synth": (
        ablation(metrics='fallback = "zebra.background_AtoB"'),
        RUN,
        "metrics.fallback: 'zebra.background_AtoB' needs synth:zebra",
    ),
    "max-seeds-below-seeds": (
        ablation(top="max_seeds = 1"),
        RUN,
        "max_seeds: 1 is below the 2 seeds planned",
    ),
    "max-seeds-zero": (ablation(top="max_seeds = 0"), RUN, "max_seeds: expected greater than or equal to 1"),
    "compare-unknown-arm": (ablation(top='compare = [["b", "z"]]'), RUN, "compare[0]: 'z' is not an arm"),
    "compare-with-control": (
        ablation(top='compare = [["b", "a"]]'),
        RUN,
        "compare[0]: every arm is already compared",
    ),
    "compare-not-pair": (ablation(top='compare = [["b"]]'), RUN, "compare[0]: expected [arm, reference]"),
    "kind-sweep": (ablation(top='kind = "sweep"'), RUN, "kind: 'sweep' specs run with `harness sweep`"),
    "kind-unknown": (ablation(top='kind = "grid"'), RUN, "kind: bad value 'grid'; valid: ablation, sweep"),
    "duplicate-table": (
        ablation() + '\n[arms.a]\n"train.pool_size" = 1\n',
        RUN,
        "invalid TOML: Cannot declare",
    ),
    "toml-syntax": (ablation(top="seeds = [1,"), RUN, "invalid TOML:"),
    "project-int": (ablation(top="project = 5"), RUN, "project: expected a valid string, got 5"),
    "leading-dot-arm": (ablation().replace("[arms.b]", '[arms.".hidden"]'), RUN, "arms..hidden: unsafe name"),
    "no-such-spec": (None, ["run", "no-such-experiment"], "no experiment spec 'no-such-experiment'"),
    # --- command line: run ---
    "seeds-flag-zero": (OK, [*RUN, "--seeds", "0"], "--seeds 0: expected 1 to 1000 seeds"),
    "seeds-flag-1e9": (OK, [*DRY, "--seeds", "1000000000"], "--seeds 1000000000: expected 1 to 1000"),
    "seeds-flag-text": (OK, [*RUN, "--seeds", "two"], "'--seeds'"),
    "set-no-equals": (OK, [*RUN, "--set", "foo"], "--set: bad override 'foo'"),
    "set-unknown-key": (
        OK,
        [*RUN, "--set", "train.poolsize=3"],
        "--set: unknown config key 'train.poolsize'",
    ),
    "set-bad-value": (OK, [*DRY, "--set", "loss.lambda_A=abc"], "--set: bad value 'abc' for 'loss.lambda_A'"),
    "set-seed": (OK, [*RUN, "--set", "train.seed=3"], "--set: 'train.seed' is set by the spec's `seeds`"),
    "set-arm-key": (OK, [*RUN, "--set", "train.pool_size=3"], "--set train.pool_size: arm 'a'"),
    "set-device-dry": (OK, [*DRY, "--set", "train.device=tpu"], "'train.device'"),
    "set-deep-D-dry": (OK, [*DRY, "--set", "model.n_layers_D=3"], "model.n_layers_D=3 is too deep for 16 px"),
    "set-crop-30": (OK, [*DRY, "--set", "data.crop_size=30 data.load_size=32"], "data.crop_size=30 is not a"),
    "set-crop-above-load": (
        OK,
        [*RUN, "--set", "data.crop_size=32"],
        "data.crop_size=32 is larger than data.load",
    ),
    "set-batch-dry": (OK, [*DRY, "--set", "train.batch_size=25"], "larger than the data set (24 training"),
    "data-flag-missing": (
        OK,
        [*RUN, "--data", "/no/such/folder"],
        "--data: folder not found: '/no/such/folder'",
    ),
    "data-flag-task": (OK, [*DRY, "--data", "synth:unicorns"], "--data: "),
    "data-flag-photos-no-fallback": (
        OK,
        [*DRY, "--data", "{photos}"],
        "metrics.primary: 'zebra.stripe_AtoB' cannot be computed on data",
    ),
    "data-flag-photos-batch": (
        ablation(metrics='fallback = "translation_AtoB"'),
        [*DRY, "--data", "{photos}", "--set", "train.batch_size=5"],
        "larger than the data set (4",
    ),
    "primary-flag-unknown": (OK, [*RUN, "--primary", "nope"], "--primary: 'nope' is not a metric"),
    "primary-flag-photos": (
        OK,
        [*DRY, "--data", "{photos}", "--primary", "seasons.l1_AtoB"],
        "--primary: 'seasons.l1_AtoB' cannot be computed on data",
    ),
    "secondary-flag-unknown": (OK, [*DRY, "--secondary", "nope"], "--secondary: 'nope' is not a metric"),
    "secondary-flag-photos": (
        ablation(metrics='fallback = "translation_AtoB"'),
        [*DRY, "--data", "{photos}", "--secondary", "zebra.shape_iou_AtoB"],
        "--secondary: 'zebra.shape_iou_AtoB' cannot be computed on data",
    ),
    "preset-turbo-dry": (OK, [*DRY, "--preset", "turbo"], "--preset: unknown preset 'turbo'"),
    "workers-negative": (OK, [*DRY, "--workers", "-2"], "'--workers'"),
    "unknown-flag": (OK, [*RUN, "--seed", "3"], "No such option: --seed"),
    # --- harness sweep ---
    "sweep-preset-turbo": (OK_SWEEP, [*SW, "--preset", "turbo"], "--preset: unknown preset 'turbo'"),
    "sweep-set-no-equals": (OK_SWEEP, [*SW, "--set", "foo"], "--set: bad override 'foo'"),
    "sweep-set-seed": (OK_SWEEP, [*SW, "--set", "train.seed=1"], "--set: 'train.seed' is set by the spec's"),
    "sweep-set-device-dry": (OK_SWEEP, [*SW_DRY, "--set", "train.device=tpu"], "'train.device'"),
    "sweep-set-deep-D": (
        OK_SWEEP,
        [*SW, "--set", "model.n_layers_D=5"],
        "model.n_layers_D=5 is too deep for 16 px",
    ),
    "sweep-set-swept-key": (OK_SWEEP, [*SW, "--set", "loss.lambda_A=3"], "--set: 'loss.lambda_A' is swept"),
    "sweep-workers-negative": (OK_SWEEP, [*SW, "--workers", "-1"], "--workers -1: expected 0"),
    "sweep-trials-negative": (OK_SWEEP, [*SW_DRY, "--trials", "-1"], "--trials -1: expected 0 or more"),
    "sweep-seeds-1e9": (
        sweep().replace("seeds = [0]", "seeds = 1000000000"),
        SW,
        "seeds: expected 1 to 1000 seeds",
    ),
    "sweep-name-help": (sweep().replace('name = "s"', 'name = "--help"'), SW, "name: unsafe name '--help'"),
    "sweep-unknown-top": (sweep(top="trials = 3"), SW, "trials: unknown key 'trials'; valid:"),
    "sweep-sampler": (sweep(sweep='sampler = "grid"'), SW, "sweep.sampler: bad value 'grid'"),
    "sweep-trials-zero": (
        sweep().replace("trials = 2", "trials = 0"),
        SW_DRY,
        "sweep.trials: expected greater than",
    ),
    "sweep-pruner-option": (
        sweep(sweep="pruner_options = { lower = 1 }"),
        SW,
        "sweep.pruner_options.lower: not an option of the median pruner",
    ),
    "sweep-param-log-low": (
        sweep(param="log = true").replace("low = 1.0", "low = 0.0"),
        SW,
        "params.loss.lambda_A.low: a log-scale parameter needs low > 0",
    ),
    "sweep-param-out-of-range": (
        sweep().replace("high = 30.0", "high = 2000.0"),
        SW,
        "params.loss.lambda_A: bad value 2000.0",
    ),
    "sweep-param-unknown-key": (
        sweep(param="lo = 1"),
        SW,
        "params.loss.lambda_A.lo: unknown key 'lo'; valid: type",
    ),
    "sweep-objective-metric": (
        sweep().replace('metric = "seasons.l1_AtoB"', 'metric = "zebra.stripe_AtoB"'),
        SW,
        "objectives[0].metric: unknown metric 'zebra.stripe_AtoB'",
    ),
    "sweep-objective-direction": (
        sweep(objective='direction = "down"'),
        SW,
        "objectives[0].direction: bad value",
    ),
    "sweep-params-empty": (
        sweep().replace('[params."loss.lambda_A"]', "[params]\n[x]"),
        SW,
        "params: expected at least 1",
    ),
    "sweep-objectives-empty": (
        sweep(top="objectives = []").replace('[[objectives]]\nmetric = "seasons.l1_AtoB"', ""),
        SW,
        "objectives: expected at",
    ),
    "sweep-kind-ablation": (
        sweep().replace('kind = "sweep"', 'kind = "ablation"'),
        SW,
        "kind: 'ablation' specs run with `harness run`",
    ),
    "sweep-base-batch": (sweep(base='"train.batch_size" = 100'), SW_DRY, "larger than the data set"),
    "sweep-flat-and-nested": (
        sweep(base='"train.pool_size" = 0\ntrain = {pool_size = 7}'),
        SW,
        "is set twice",
    ),
    # A queue or a store that cannot be reached: said before the experiment is written (ports 1: closed;
    # the S3 endpoint is the `isolated` fixture's AWS_ENDPOINT_URL).
    "storage-unreachable": (
        ablation(),
        [*RUN, "--storage", "postgresql://u@127.0.0.1:1/db"],
        "--storage postgresql://u@127.0.0.1:1/db: cannot open the database",
    ),
    "store-unreachable": (ablation(), [*RUN, "--store", "s3://r/x"], "--store s3://r/x: EndpointConnection"),
    "store-unknown-scheme": (ablation(), [*DRY, "--store", "nope://runs/x"], "Protocol not known: nope"),
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder data set in the CycleGAN layout: 4 train and 2 test images per domain, 16 px."""
    root = tmp_path_factory.mktemp("photos")
    for part, n in (("trainA", 4), ("trainB", 4), ("testA", 2), ("testB", 2)):
        (root / part).mkdir()
        for i in range(n):
            Image.new("RGB", (16, 16), (40 * i, 90, 200 if part.endswith("A") else 20)).save(
                root / part / f"{i}.png"
            )
    return root


def _run(argv: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["harness", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def isolated(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    """A working folder with the data home and caches elsewhere, so anything written here is a finding."""
    outside = tmp_path_factory.mktemp("outside")
    monkeypatch.setenv("HARNESS_DATA", str(outside / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(outside / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    for key, value in (("AWS_ENDPOINT_URL", "http://127.0.0.1:1"), ("AWS_ACCESS_KEY_ID", "k"),
                       ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case, isolated, photos, monkeypatch, capsys):
    text, argv, expected = CASES[case]
    spec = isolated / "t.toml"
    if text is not None:
        spec.write_text(text)
    argv = [a.format(spec=spec, photos=photos) for a in argv]
    code, _, err = _run(argv, isolated, monkeypatch, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and expected in err, err
    assert sorted(p.name for p in isolated.iterdir()) == (["t.toml"] if text is not None else [])


def test_values_may_contain_spaces(isolated, photos, tmp_path, monkeypatch, capsys):
    """``--set data.dir_A=/path with space`` is one override (the value keeps its spaces)."""
    spaced = tmp_path / "my photos"
    for side in ("A", "B"):
        (spaced / f"train {side}").mkdir(parents=True)
        for image in (photos / f"train{side}").iterdir():
            (spaced / f"train {side}" / image.name).write_bytes(image.read_bytes())
    spec = isolated / "t.toml"
    spec.write_text(ablation(metrics='fallback = "translation_AtoB"'))
    sets = [f"data.dir_A={spaced / 'train A'}", f"data.dir_B={spaced / 'train B'}"]
    argv = [
        "run",
        str(spec),
        "--dry-run",
        "--data",
        str(photos),
        "--seeds",
        "1",
        "--set",
        sets[0],
        "--set",
        sets[1],
    ]
    code, out, err = _run(argv, isolated, monkeypatch, capsys)
    assert code == 0, err
    assert "12 iterations, 3 epochs" in out, out  # 4 images a domain: the smoke preset's 12 iterations
    assert "primary metric translation_AtoB" in out and "the spec's fallback" in out, out
    assert sorted(p.name for p in isolated.iterdir()) == ["t.toml"]
