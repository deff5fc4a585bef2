"""Read one experiment of the run store (docs/RUNSTORE.md) into plain frames, tolerating partial stores.

A report must never drop a run silently: every planned run gets a row, with status ``missing`` when its
folder does not exist, and a run whose files cannot be read keeps its row with the reason as its error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import UserError

RUN_COLUMNS = [
    "run",
    "arm",
    "seed",
    "status",
    "error",
    "planned",
    "iteration",
    "total",
    "wall_seconds",
    "train_seconds",
    "it_per_s",
    "peak_memory_mb",
    "host",
    "device",
    "wandb",
    "git_commit",
    "git_dirty",
    "started",
    "ended",
    "oscillation_G",
    "oscillation_D",
    "diverged",
    "collapsed",
    "reused_from",  # <experiment>/<run> whose result this run reuses (harness.engine.reuse); empty: own run
]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Store:
    """One experiment as read from disk: what the report (and later a sweep report) draws from."""

    folder: Path
    experiment: dict[str, Any]
    runs: pd.DataFrame  # one row per run, RUN_COLUMNS
    finals: pd.DataFrame  # index run, one column per metric (final eval from summary.json)
    losses: pd.DataFrame  # run, arm, seed, iteration, G_A, G_B, D_A, D_B, cycle_A, ...
    evals: pd.DataFrame  # run, arm, seed, iteration, time, <metric>...
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run -> flat resolved config
    samples: dict[str, Path] = field(default_factory=dict)  # run -> latest samples/*.png
    per_image: dict[str, dict[str, list]] = field(default_factory=dict)  # run -> metric -> per-image scores
    notes: list[str] = field(default_factory=list)  # problems met while reading (skipped lines, bad files)

    @property
    def control(self) -> str:
        return self.experiment["control"]

    @property
    def arms(self) -> list[str]:
        """Control first, then the other arms in the spec's order."""
        names = [self.control] + [a for a in self.experiment["arms"] if a != self.control]
        extra = [a for a in self.runs["arm"].dropna().unique() if a not in names]
        return names + sorted(extra)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(arm, reference) for every test: each arm vs the control, then the spec's extra `compare` pairs."""
        vs_control = [(a, self.control) for a in self.arms if a != self.control]
        return vs_control + [(a, r) for a, r in self.experiment.get("compare", [])]

    @property
    def metric_names(self) -> list[str]:
        """Primary first, then the spec's secondary metrics, then every other metric found, sorted."""
        m = self.experiment["metrics"]
        seen = [c for c in self.finals.columns if self.finals[c].notna().any()]
        ordered = [m["primary"]] + [s for s in m.get("secondary", []) or [] if s != m["primary"]]
        return ordered + sorted(c for c in seen if c not in ordered)

    def image_scores(self, arm: str, metric: str) -> list[np.ndarray]:
        """Per-image scores of ``metric`` for each done run of ``arm`` that stored them (per_image.json)."""
        runs = self.done().loc[lambda r: r["arm"] == arm, "run"]
        out = [self.per_image.get(r, {}).get(metric) for r in runs]
        return [np.array([np.nan if v is None else v for v in s], dtype=float) for s in out if s]

    def done(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "done"]

    def values(self, arm: str, metric: str) -> pd.Series:
        """Final values of ``metric`` over the done runs of ``arm``, indexed by seed."""
        done = self.done()
        rows = done[done["arm"] == arm]
        if metric not in self.finals.columns:
            return pd.Series([], dtype=float)
        vals = self.finals.loc[rows["run"], metric].astype(float)
        vals.index = rows["seed"].to_numpy()
        return vals.dropna()


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, sect in config.items() if isinstance(sect, dict) for k, v in sect.items()}


def _read_jsonl(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Records of metrics.jsonl, keeping the last one per (kind, iteration) as resumed runs append."""
    latest: dict[tuple[str, Any], dict[str, Any]] = {}
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # a crash can leave the last line half-written
                continue
            if isinstance(rec, dict) and "kind" in rec and "iteration" in rec:
                latest[(rec["kind"], rec["iteration"])] = rec
    if bad:
        notes.append(f"{path}: skipped {bad} unreadable line(s)")
    return list(latest.values())


def experiment_folder(store: Path, name: str) -> Path:
    """The folder of ``name`` under ``store``, or a UserError that lists the experiments there."""
    if not _NAME.match(name):
        raise UserError(f"experiment name '{name}' is not a plain folder name (letters, digits, . _ -)")
    folder = Path(store) / name
    if not (folder / "experiment.json").is_file():
        found = sorted(p.parent.name for p in Path(store).glob("*/experiment.json"))
        listed = ", ".join(found) if found else "none"
        raise UserError(
            f"no experiment '{name}' in {store} ({folder / 'experiment.json'} not found); "
            f"experiments there: {listed}"
        )
    return folder


def read_experiment(folder: Path) -> dict[str, Any]:
    path = folder / "experiment.json"
    try:
        exp = _read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if exp.get("kind") == "sweep":
        raise UserError(
            f"{path}: kind is 'sweep'; `harness report` compares the arms of an ablation with its "
            "control, and a sweep has neither (its report comes from the sweep tooling)"
        )
    for key in ("name", "control", "arms", "metrics", "seeds"):
        if key not in exp:
            raise UserError(
                f"{path}: missing key '{key}'; a comparison report needs name, control, arms, "
                "metrics and seeds"
            )
    if not isinstance(exp["metrics"], dict) or "primary" not in exp["metrics"]:
        raise UserError(f"{path}: key 'metrics' must hold 'primary' (and 'direction')")
    if not isinstance(exp["arms"], dict) or exp["control"] not in exp["arms"]:
        raise UserError(
            f"{path}: control '{exp['control']}' is not one of the arms: {', '.join(map(str, exp['arms']))}"
        )
    for pair in exp.get("compare", []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(a in exp["arms"] for a in pair)):
            raise UserError(f"{path}: compare: {pair!r} is not a pair of arms ({', '.join(exp['arms'])})")
    return exp


def _run_row(folder: Path, name: str, arm: Any, seed: Any, planned: bool, notes: list[str]) -> dict[str, Any]:
    """Everything run.json and summary.json say about one run, falling back field by field."""
    row: dict[str, Any] = {c: None for c in RUN_COLUMNS}
    row.update(run=name, arm=arm, seed=seed, planned=planned)
    if not folder.is_dir():
        row["status"] = "missing"
        return row
    info: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    problems = []
    for fname, target in (("run.json", info), ("summary.json", summary)):
        path = folder / fname
        if path.is_file():
            try:
                target.update(_read_json(path))
            except (OSError, ValueError) as exc:
                problems.append(f"{fname} unreadable ({exc})")
                notes.append(f"{path}: unreadable ({exc})")
    row["arm"] = arm if arm is not None else info.get("arm")
    row["seed"] = seed if seed is not None else info.get("seed")
    # as harness status decides: summary.json once the run ended, else run.json
    ended = summary.get("status") in ("done", "failed", "pruned")
    fallback = "unreadable" if problems else "pending"
    row["status"] = summary["status"] if ended else (info.get("status") or fallback)
    row["error"] = summary.get("error") or info.get("error") or ("; ".join(problems) or None)
    cost = summary.get("cost") or {}
    health = summary.get("health") or {}
    git = info.get("git") or {}
    row.update(
        iteration=summary.get("iteration"),
        total=summary.get("total"),
        wall_seconds=cost.get("wall_seconds", info.get("wall_seconds")),
        train_seconds=cost.get("train_seconds"),
        it_per_s=cost.get("it_per_s"),
        peak_memory_mb=cost.get("peak_memory_mb", info.get("peak_memory_mb")),
        host=info.get("host"),
        device=info.get("device"),
        wandb=_wandb_mode(info.get("wandb")),
        git_commit=git.get("commit"),
        git_dirty=git.get("dirty"),
        started=info.get("started"),
        ended=info.get("ended"),
        oscillation_G=health.get("oscillation_G"),
        oscillation_D=health.get("oscillation_D"),
        diverged=health.get("diverged"),
        collapsed=health.get("collapsed"),
        reused_from=info.get("reused_from"),
    )
    row["_metrics"] = summary.get("metrics") or {}
    if row["status"] == "done" and not any(_number(v) == _number(v) for v in row["_metrics"].values()):
        notes.append(f"{folder}: status done but summary.json holds no metric values")
    return row


def _wandb_mode(record: Any) -> str | None:
    """How the run logged to W&B (run.json ``wandb``): online / offline / disabled, and the mode asked for
    when W&B could not be reached and the run fell back to offline."""
    if not isinstance(record, dict) or not record.get("mode"):
        return None
    asked = record.get("asked")
    return f"{record['mode']} (fallback: {asked} failed)" if asked else str(record["mode"])


def _number(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def load_store(store: Path, name: str) -> Store:
    """Read ``store/name``: the experiment, every planned run (present or not), any unplanned run folder."""
    folder = experiment_folder(store, name)
    exp = read_experiment(folder)
    notes: list[str] = []
    rows, configs, samples, per_image = [], {}, {}, {}
    loss_recs: list[dict[str, Any]] = []
    eval_recs: list[dict[str, Any]] = []

    planned = [
        (r.get("run"), r.get("arm"), r.get("seed")) for r in exp.get("runs", []) if isinstance(r, dict)
    ]
    names = {p[0] for p in planned}
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "run.json").is_file())
    entries = [(n, a, s, True) for n, a, s in planned] + [
        (n, None, None, False) for n in found if n not in names
    ]
    for run, arm, seed, is_planned in entries:
        rdir = folder / str(run)
        row = _run_row(rdir, str(run), arm, seed, is_planned, notes)
        rows.append(row)
        if not rdir.is_dir():
            continue
        if (rdir / "config.json").is_file():
            try:
                configs[str(run)] = _flatten(_read_json(rdir / "config.json"))
            except (OSError, ValueError) as exc:
                notes.append(f"{rdir / 'config.json'}: unreadable ({exc})")
        if (rdir / "per_image.json").is_file():
            try:
                per_image[str(run)] = _read_json(rdir / "per_image.json").get("scores") or {}
            except (OSError, ValueError) as exc:
                notes.append(f"{rdir / 'per_image.json'}: unreadable ({exc})")
        pngs = sorted((rdir / "samples").glob("*.png"))
        if pngs:
            samples[str(run)] = pngs[-1]
        if (rdir / "metrics.jsonl").is_file():
            for rec in _read_jsonl(rdir / "metrics.jsonl", notes):
                rec = {**rec, "run": str(run), "arm": row["arm"], "seed": row["seed"]}
                (loss_recs if rec["kind"] == "loss" else eval_recs).append(rec)

    finals = pd.DataFrame(
        [{k: _number(v) for k, v in r.pop("_metrics", {}).items()} for r in rows],
        index=[r["run"] for r in rows],
    )
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return Store(
        folder=folder,
        experiment=exp,
        runs=runs,
        finals=finals,
        losses=_frame(loss_recs),
        evals=_frame(eval_recs),
        configs=configs,
        samples=samples,
        per_image=per_image,
        notes=notes,
    )


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(columns=["run", "arm", "seed", "iteration"])
    df = pd.DataFrame(records).drop(columns=["kind"])
    return df.sort_values(["run", "iteration"]).reset_index(drop=True)
