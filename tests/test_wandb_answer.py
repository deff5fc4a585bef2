"""The answer in W&B too: after a report, an experiment-level W&B run holds the comparison table, the verdicts
and the report HTML (checked in W&B's offline files); rebuilding the report appends to the same run id."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import wandb

from harness.engine.tracking import publish_report

REPORT = Path(__file__).resolve().parents[1] / "reports" / "ablate-pool"  # a committed report, only read


def test_the_report_goes_to_one_experiment_level_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    folder = tmp_path / "runs" / "ablate-pool"
    folder.mkdir(parents=True)
    record = {"name": "ablate-pool", "created": "2026-11-28T01:00:00Z", "project": "answers"}
    (folder / "experiment.json").write_text(json.dumps(record))
    wandb.teardown()
    try:
        lines = [publish_report(folder, REPORT, "offline") for _ in range(2)]  # built, then rebuilt
    finally:
        wandb.teardown()
    assert lines[0] == lines[1] and lines[0].startswith("W&B: the report is run ")
    run_id = lines[0].split()[5]
    runs = sorted((tmp_path / "runs" / ".wandb-reports" / "ablate-pool" / "wandb").glob("offline-run-*"))
    # one W&B run, appended to (W&B adds "-1" to the folder of a second start within the same second)
    assert len(runs) == 2 and all(re.search(f"-{run_id}(-\\d+)?$", r.name) for r in runs)
    media = runs[-1] / "files" / "media"
    (table,) = (media / "table").glob("comparisons_*.table.json")
    with open(REPORT / "comparisons.csv", newline="") as f:
        rows = list(csv.reader(f))
    logged = json.loads(table.read_text())
    assert logged["columns"] == rows[0] and len(logged["data"]) == len(rows) - 1
    (verdicts,) = (media / "table").glob("verdicts_*.table.json")
    expected = json.loads((REPORT / "report.json").read_text())["verdicts"]
    assert [row[0] for row in json.loads(verdicts.read_text())["data"]] == expected
    (html,) = (media / "html").glob("report_*.html")
    body = (REPORT / "report.html").read_text().split("</head>", 1)[1].strip()  # W&B adds to the head only
    assert body in html.read_text()
    assert publish_report(folder, REPORT, "disabled") is None
