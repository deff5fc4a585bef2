"""From a spec (and command-line changes) to units of work: a resolved Config and run folder per arm x seed.

Precedence, lowest first: paper defaults < preset < spec ``base`` < spec budget/``eval_every`` < ``--set`` <
the arm's overrides < the seed. ``--set`` may not touch a key an arm sets (that would erase the comparison).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cyclegan.atomic import atomic_write_json
from cyclegan.config import Config, ConfigError, apply_overrides, resolve
from harness.engine.spec import Spec, no_seed, safe_name
from harness.engine.store import now_iso, read_json
from harness.errors import UserError


@dataclass(frozen=True)
class Unit:
    """One unit of work: the ablation engine enqueues these, a sweep builds them from a sampler's trials.

    ``key`` is the run folder's name (``<arm>-s<seed>-<hash>``): a changed config is a new key, never a silent
    reuse of an old result.
    """

    experiment: str
    key: str
    arm: str
    seed: int
    cfg: Config
    run_dir: Path

    def attrs(self) -> dict[str, Any]:
        """What travels through the queue: the run key (its config is in the run folder and the study)."""
        return {"experiment": self.experiment, "unit": self.key, "arm": self.arm, "seed": self.seed}

    @classmethod
    def load(cls, attrs: dict[str, Any], store: Path, configs: dict[str, dict[str, Any]]) -> Unit:
        """The unit a queued trial names, with the config the plan wrote to its run folder (written there
        from the study's copy when this worker's store is elsewhere)."""
        key = attrs["unit"]
        if not safe_name(key):
            raise UserError(f"queued unit '{key}' is not a run folder name; was the queue edited?")
        run_dir = experiment_dir(store, attrs["experiment"]) / key
        written = read_json(run_dir / "config.json")
        if written is None:
            written = configs[key]
            atomic_write_json(run_dir / "config.json", written)
        return cls(attrs["experiment"], key, attrs["arm"], attrs["seed"], Config.from_dict(written), run_dir)


def run_name(arm: str, seed: int, cfg: Config) -> str:
    return f"{arm}-s{seed}-{cfg.digest()}"


def experiment_dir(store: Path, experiment: str) -> Path:
    return Path(store) / experiment


def unit_for(experiment: str, arm: str, seed: int, cfg: Config, store: Path) -> Unit:
    """A unit for any resolved config (the sweep's entry point)."""
    cfg = apply_overrides(cfg, {"train.seed": seed})
    key = run_name(arm, seed, cfg)
    return Unit(experiment, key, arm, seed, cfg, experiment_dir(store, experiment) / key)


@dataclass(frozen=True)
class Plan:
    spec: Spec
    preset: str
    data: str
    seeds: list[int]
    sets: dict[str, str]
    units: list[Unit]
    store: Path
    primary: str = ""  # the metric verdicts are on: the spec's, --primary's, or the spec's fallback
    secondary: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the plan changed and why (a fallback metric, dropped metrics)

    @property
    def folder(self) -> Path:
        return experiment_dir(self.store, self.spec.name)

    @property
    def direction(self) -> str:
        from cyclegan.metrics import registry

        return (
            self.spec.direction if self.primary == self.spec.primary else registry.get(self.primary).direction
        )

    def experiment_record(self, command: str) -> dict[str, Any]:
        """experiment.json (docs/RUNSTORE.md)."""
        s = self.spec
        runs = [{"arm": u.arm, "seed": u.seed, "run": u.key, **budget(u.cfg)} for u in self.units]
        return {
            "name": s.name,
            "question": s.question,
            "kind": "ablation",
            "spec_path": str(s.path),
            "command": command,
            "preset": self.preset,
            "base": {**s.base, **budget_overrides(s.budget), **self.sets},
            "data": self.data,
            "control": s.control,
            "compare": [list(pair) for pair in s.compare],
            "arms": s.arms,
            "arm_notes": s.arm_notes,
            "seeds": self.seeds,
            "first_seeds": len(s.seeds),  # the first look of the sequential design (report.sequential)
            "max_seeds": s.max_seeds,
            "budget": {
                k: "/".join(sorted({str(r[k]) for r in runs}, key=float)) for k in ("iterations", "epochs")
            }
            if all(r["iterations"] for r in runs)
            else s.budget,
            "metrics": {
                "primary": self.primary,
                "direction": self.direction,
                "secondary": list(self.secondary),
                "fallback": s.fallback,
                "margin": s.margins,
                "failure": s.failure_thresholds,
                "notes": list(self.notes),
            },
            "project": s.project,
            "runs": runs,
            "created": now_iso(),
        }


def write_configs(units: list[Unit]) -> dict[str, dict[str, Any]]:
    """Each unit's resolved config, written to its run folder once (workers read it there); returned for the
    queue's copy, which workers whose store is on another machine read instead."""
    configs = {u.key: u.cfg.to_dict() for u in units}
    for u in units:
        if not (u.run_dir / "config.json").exists():
            atomic_write_json(u.run_dir / "config.json", configs[u.key])
    return configs


def write_experiment(folder: Path, record: dict[str, Any]) -> None:
    """The one writer of experiment.json (ablations, sweeps, and a worker's copy from the queue): its first
    ``created`` time stays."""
    previous = read_json(folder / "experiment.json")
    if previous and previous.get("created"):
        record = {**record, "created": previous["created"]}
    atomic_write_json(folder / "experiment.json", record)


def budget_overrides(budget: dict[str, int]) -> dict[str, Any]:
    """``iterations = N`` caps the run at N iterations; ``epochs = E`` is the paper's schedule shape over E
    epochs (half at the initial rate, half decaying) with no iteration cap."""
    if "iterations" in budget:
        return {"train.max_iters": budget["iterations"]}
    if "epochs" in budget:
        e = budget["epochs"]
        return {"optim.n_epochs": (e + 1) // 2, "optim.n_epochs_decay": e // 2, "train.max_iters": 0}
    return {}


def train_images(cfg: Config) -> int | None:
    """Images per epoch of the larger domain, without generating or reading any image."""
    d = cfg.data
    if d.dataset.startswith("synth:") and not d.dir_A:
        return d.synth_n_train
    if d.dir_A:
        return _larger_folder(d.dir_A, d.dir_B)
    return _larger_folder(str(Path(d.dataset) / "trainA"), str(Path(d.dataset) / "trainB"))


@lru_cache(maxsize=32)
def _larger_folder(dir_A: str, dir_B: str) -> int | None:
    """Listed once per process: a plan asks for every arm and run (fit, checks, budget lines)."""
    from cyclegan.data.images import list_images

    try:
        return max(len(list_images(dir_A)), len(list_images(dir_B)))
    except OSError:
        return None


def budget(cfg: Config) -> dict[str, int | None]:
    """Iterations and epochs one run trains (None when the training images cannot be counted here)."""
    from cyclegan.train import total_iterations

    n = train_images(cfg)
    if not n:
        return {"iterations": None, "epochs": None, "images": None}
    per_epoch = -(-n // cfg.train.batch_size)
    its = total_iterations(cfg, per_epoch)
    epochs = its / per_epoch
    return {
        "iterations": its,
        "epochs": int(epochs) if epochs.is_integer() else round(epochs, 2),
        "images": n,
    }


def fit_epochs(cfg: Config) -> Config:
    """A budget in iterations (``train.max_iters``) is the budget: when the epoch schedule would end first
    (a small data set), the epochs grow, in the preset's ratio of constant to decaying epochs, until the
    schedule covers it. A schedule that already covers it is left as it is."""
    n = train_images(cfg)
    o = cfg.optim
    if not n or not cfg.train.max_iters or o.n_epochs + o.n_epochs_decay == 0:
        return cfg
    per_epoch = -(-n // cfg.train.batch_size)
    total = -(-cfg.train.max_iters // per_epoch)
    if (o.n_epochs + o.n_epochs_decay) >= total:
        return cfg
    constant = -(-total * o.n_epochs // (o.n_epochs + o.n_epochs_decay))
    return apply_overrides(cfg, {"optim.n_epochs": constant, "optim.n_epochs_decay": total - constant})


def check_runnable(cfg: Config, where: str) -> None:
    """Settings that fail only when training starts, caught when planning: a discriminator deeper than the
    crop allows, a crop the generator cannot give back or the resize cannot give, a batch larger than the
    data set, a missing weights file."""
    m, d = cfg.model, cfg.data
    size = d.crop_size  # other preprocess modes keep each image's own size: checked when it loads
    one_value = m.norm == "none" or m.norm == "batch" and cfg.train.batch_size > 1  # norm over 1x1 works
    least = 2 if m.netD == "scalar" and one_value else 3  # else the last map must be 2x2 or more
    if "crop" in d.preprocess and m.netD != "pixel" and size >> m.n_layers_D < least:
        deepest = max([n for n in range(6) if size >> n >= least] or [0])
        raise UserError(
            f"{where}: model.n_layers_D={m.n_layers_D} is too deep for {size} px images (each layer halves "
            f"them; at most {deepest} here)"
        )
    if "crop" in d.preprocess and d.crop_size % 4:
        raise UserError(f"{where}: data.crop_size={d.crop_size} is not a multiple of 4 (G halves it twice)")
    if d.preprocess == "resize_and_crop" and d.crop_size > d.load_size:
        raise UserError(f"{where}: data.crop_size={d.crop_size} is larger than data.load_size={d.load_size}")
    n = train_images(cfg)
    if n and cfg.train.batch_size > n:
        raise UserError(
            f"{where}: train.batch_size={cfg.train.batch_size} is larger than the data set ({n} training "
            f"images per domain in {d.dir_A or d.dataset})"
        )
    weights = cfg.eval.inception_weights
    if weights and not Path(weights).is_file():
        raise UserError(f"{where}: eval.inception_weights: no file '{weights}'")


def pick_metrics(
    spec: Spec, data: str, primary: str | None, secondary: list[str] | None = None
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(primary, secondary, notes) on ``data``: ``--primary`` or the spec's primary when the data can give
    it, else the spec's fallback (stated); the spec's secondary metrics that the data cannot give are left
    out (stated); ``--primary`` and ``--secondary`` must be computable."""
    from cyclegan.metrics import registry

    chosen = primary or spec.metric_table.primary or registry.primary_metric(data).name
    asked = [(chosen, "--primary" if primary else f"{spec.path}: metrics.primary")]
    notes = []
    why = registry.unavailable(chosen, data) if chosen in registry.REGISTRY else None
    if why and not primary and spec.fallback and not registry.unavailable(spec.fallback, data):
        notes.append(f"primary metric {spec.fallback} (the spec's fallback): {chosen} {why}, not '{data}'")
        asked = [(spec.fallback, "metrics.fallback")]
    for name, flag in asked + [(n, "--secondary") for n in secondary or []]:
        valid = [
            n for n in registry.metric_names(data) if n.count(".") < 2 and not registry.unavailable(n, data)
        ]
        if name not in registry.REGISTRY:
            raise UserError(f"{flag}: '{name}' is not a metric; valid: {', '.join(valid)}")
        if why := registry.unavailable(name, data):
            raise UserError(
                f"{flag}: '{name}' cannot be computed on data '{data}' ({why}); valid: {', '.join(valid)}"
                + (" (choose one with --primary METRIC)" if "primary" in flag else "")
            )
    chosen = asked[0][0]
    others = [n for n in (spec.secondary if secondary is None else secondary) if n != chosen]
    if spec.primary != chosen and spec.primary not in others and secondary is None:
        others.insert(0, spec.primary)  # the spec's own primary stays in view where the data gives it
    dropped = [n for n in others if registry.unavailable(n, data)]
    if [n for n in dropped if n != spec.primary]:
        notes.append(
            f"left out (not computable on '{data}'): {', '.join(n for n in dropped if n != spec.primary)}"
        )
    return chosen, tuple(n for n in others if n not in dropped), tuple(notes)


def build_plan(
    spec: Spec,
    store: Path,
    preset: str | None = None,
    seeds: list[int] | None = None,
    data: str | None = None,
    sets: dict[str, str] | None = None,
    primary: str | None = None,
    secondary: list[str] | None = None,
) -> Plan:
    """Every (arm, seed) unit, seeds interleaved across arms so a partial run is balanced."""
    preset = preset or spec.preset
    data = data or spec.data
    sets = dict(sets or {})
    seeds = list(seeds) if seeds is not None else spec.seeds
    no_seed("--set", sets)
    for key in sets:
        arms = [a for a, o in spec.arms.items() if key in o]
        if arms:
            raise UserError(
                f"--set {key}: arm '{arms[0]}' of {spec.path} sets this key; change the spec instead"
            )
    chosen, others, notes = pick_metrics(spec, data, primary, secondary)
    where = "--set"
    try:
        common = resolve(preset)
        where = f"{spec.path}: base"
        common = apply_overrides(common, {**spec.base, "data.dataset": data})
        common = apply_overrides(common, budget_overrides(spec.budget))
        if spec.eval_every is not None:
            common = apply_overrides(common, {"train.eval_every": spec.eval_every})
        where = "--set"
        common = apply_overrides(common, sets)
    except ConfigError as exc:
        raise UserError(f"{where}: {exc}") from None
    arm_cfgs: dict[str, Config] = {}
    for arm, overrides in spec.arms.items():
        where = f"{spec.path}: arms.{arm}"
        try:
            cfg = apply_overrides(common, overrides)
        except ConfigError as exc:
            raise UserError(f"{where}: {exc}") from None
        cfg = cfg if "epochs" in spec.budget or spec.budget_in == "epochs" else fit_epochs(cfg)
        check_runnable(cfg, where)
        same = [a for a, c in arm_cfgs.items() if c == cfg]
        if same:
            raise UserError(f"{where}: the same config as arm '{same[0]}'; arms must differ to be compared")
        arm_cfgs[arm] = cfg
    units = [unit_for(spec.name, arm, seed, arm_cfgs[arm], store) for seed in seeds for arm in spec.arms]
    return Plan(spec, preset, data, seeds, sets, units, Path(store), chosen, others, notes)
