"""Weights & Biases mirror of one run. The run store is the source of truth; W&B is a convenience.

wandb is imported lazily, every call is guarded (a W&B failure warns once and never stops training), and a
resumed run continues the same W&B run id (kept in run.json). Files go under the run folder, not the cwd.
"""

from __future__ import annotations

import math
import netrc
import os
import sys
import uuid
from pathlib import Path
from typing import Any

MODES = ("auto", "online", "offline", "disabled")


def has_api_key() -> bool:
    """True when W&B could log online: WANDB_API_KEY or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def pick_mode(mode: str) -> str:
    """``auto``: WANDB_MODE if set, else online with an API key and offline without one."""
    if mode not in MODES:
        from harness.errors import UserError

        raise UserError(f"--wandb {mode}: valid: {', '.join(MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_api_key() else "offline"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def init_timeout() -> float:
    """Seconds ``wandb.init`` may take: WANDB_INIT_TIMEOUT if set, else 15 (W&B's own default is 90 s, a
    wait every run would pay when the server is unreachable)."""
    try:
        return float(os.environ.get("WANDB_INIT_TIMEOUT", "15"))
    except ValueError:
        return 15.0


class Tracker:
    """One W&B run per harness run: group = experiment, job_type = arm, name ``<arm>-s<seed>``.

    When W&B cannot be reached online, the run logs offline instead (``wandb sync`` uploads it later), and so
    do this process's later runs: one wait of ``init_timeout()`` per worker, not one per run. ``used`` is the
    mode a run actually logged in, for run.json."""

    _warned = False
    _unreachable = False  # online init failed once in this process

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.used = mode
        self.run: Any = None

    def _guard(self, what: str, fn, *args, **kwargs) -> Any:
        if self.run is None and what != "init":
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - W&B must never stop training
            if not Tracker._warned:
                print(f"warning: W&B {what} failed ({type(exc).__name__}: {exc}); continuing without W&B",
                      file=sys.stderr)  # fmt: skip
                Tracker._warned = True
            self.run = None
            return None

    def start(
        self, *, run_id: str, project: str, group: str, job_type: str, name: str, config: dict, run_dir: Path
    ) -> None:
        if self.mode == "disabled":
            return

        def init(mode: str) -> Any:
            import wandb

            return wandb.init(
                id=run_id,
                resume="allow",
                project=project,
                group=group,
                job_type=job_type,
                name=name,
                config=config,
                mode=mode,
                dir=str(run_dir),
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=init_timeout()),
            )

        self.used = "offline" if self.mode == "online" and Tracker._unreachable else self.mode
        if self.used == "online":
            try:
                self.run = init("online")
                return
            except Exception as exc:  # noqa: BLE001 - unreachable or refused: log offline instead
                import wandb

                why = " ".join(str(exc).split())[:200]
                print(f"warning: W&B online failed ({type(exc).__name__}: {why}); this worker's runs log "
                      "offline (upload them later with `wandb sync`)", file=sys.stderr)  # fmt: skip
                Tracker._unreachable, Tracker._warned = True, True
                wandb.teardown()  # the failed run holds its id in W&B's service until it stops
                self.used = "offline"
        self.run = self._guard("init", init, self.used)
        if self.run is None:
            self.used = "disabled"

    def log(self, values: dict[str, Any], step: int) -> None:
        clean = {k: v for k, v in values.items() if _number(v)}
        self._guard("log", lambda: self.run.log(clean, step=step))

    def image(self, key: str, path: Path, step: int, caption: str) -> None:
        def log_image() -> None:
            import wandb

            self.run.log({key: wandb.Image(str(path), caption=caption)}, step=step)

        self._guard("image", log_image)

    def log_objects(self, values: dict[str, Any]) -> None:
        """W&B objects (tables, HTML) as they are, unlike ``log`` which keeps finite numbers only."""
        self._guard("log", lambda: self.run.log(values))

    def summary(self, values: dict[str, Any]) -> None:
        def update() -> None:
            for k, v in values.items():
                if v is not None:
                    self.run.summary[k] = v

        self._guard("summary", update)

    def finish(self, failed: bool = False) -> None:
        run, self.run = self.run, None
        if run is not None:
            self.run = run
            self._guard("finish", lambda: run.finish(exit_code=1 if failed else 0))
            self.run = None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def publish_report(folder: Path, report: Path, mode: str) -> str | None:
    """Put an experiment's answer beside its runs in W&B; returns the line that says where (None: W&B is
    disabled). A W&B problem never fails the command: the report is written, W&B is a mirror."""
    if mode == "disabled":
        return None
    try:
        run_id = _publish(folder, report, mode)
    except Exception as exc:  # noqa: BLE001 - a missing report file, a W&B error
        return f"W&B: the report was not published ({type(exc).__name__}: {exc})"
    return f"W&B: the report is run {run_id} (group {folder.name}, job_type report)" if run_id else (
        "W&B: the report was not published (see the warning above)")  # fmt: skip


def _publish(folder: Path, report: Path, mode: str) -> str | None:
    """One W&B run (group = experiment, job_type "report") with the comparison table, the verdicts and the
    report HTML. Its id is fixed per experiment (from its name and creation time), so rebuilding the report
    appends to the same W&B run. ``folder`` is the experiment's store folder."""
    import csv
    import json

    record = json.loads((folder / "experiment.json").read_text())
    answer = json.loads((report / "report.json").read_text())
    with open(report / "comparisons.csv", newline="") as f:
        rows = list(csv.reader(f))
    import wandb

    verdicts = answer.get("verdicts") or []
    objects = {
        "verdicts": wandb.Table(columns=["verdict"], data=[[v] for v in verdicts]),
        "report": wandb.Html((report / "report.html").read_text()),
    }
    if rows:
        objects["comparisons"] = wandb.Table(columns=rows[0], data=[_cells(r) for r in rows[1:]])
    files = folder.parent / ".wandb-reports" / folder.name  # not in the experiment folder: runs only there
    files.mkdir(parents=True, exist_ok=True)
    project = record.get("project") or "cyclegan-harness"
    run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{record['name']}@{record.get('created')}").hex[:12]
    tracker = Tracker(mode)
    tracker.start(run_id=run_id, project=project, group=record["name"], job_type="report",
                  name=f"{record['name']} report", config={"experiment": record},
                  run_dir=files)  # fmt: skip
    if tracker.run is None:
        return None
    tracker.log_objects(objects)
    tracker.summary(
        {"verdicts": "\n".join(verdicts), "runs": answer.get("runs"), "primary": answer.get("primary")}
    )
    tracker.finish()
    return run_id


def _cells(row: list[str]) -> list[Any]:
    """A CSV row with its numbers as numbers (empty: None), so W&B can sort and plot the table."""
    out: list[Any] = []
    for cell in row:
        if cell == "":
            out.append(None)
            continue
        try:
            out.append(float(cell))
        except ValueError:
            out.append(cell)
    return out
