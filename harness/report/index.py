"""``reports/index.md``: every report under the reports root, rebuilt from each folder's ``report.json``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from cyclegan.atomic import atomic_write_text
from harness.report.render import md_escape


def write_index(out_root: Path) -> Path:
    """List each report (question, date, verdict lines), newest first; unreadable report.json are named."""
    entries, broken = [], []
    for path in sorted(Path(out_root).glob("*/report.json")):
        try:
            entries.append((path.parent.name, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            broken.append(path.parent.name)
    entries.sort(key=lambda e: (str(e[1].get("date") or ""), e[0]), reverse=True)
    lent = _lent(entries)
    lines = [
        "# Reports",
        "",
        f"{len(entries)} report(s), newest first. Rebuilt by `harness report NAME`.",
        "",
    ]
    for folder, info in entries:
        runs = info.get("runs", {})
        lines += [
            f"## [{md_escape(info.get('name', folder))}]({quote(folder)}/report.md)",
            "",
            f"- **question:** {md_escape(info.get('question') or '(none given)')}",
            f"- **date:** {md_escape(info.get('date') or 'unknown')}",
            "- **runs:** "
            + md_escape(
                info.get("runs_text")  # a sweep's trials: finished and pruned are different outcomes
                or f"{runs.get('done', 0)} done of {runs.get('planned', 0)} planned, "
                f"{runs.get('failed', 0)} failed, {runs.get('missing', 0)} missing"
            ),
            *_sharing(info, lent.get(str(info.get("name", folder)), Counter())),
            "- **verdict:**",
            *[f"  - {md_escape(v)}" for v in info.get("verdicts", [])],
            "",
        ]
    if broken:
        lines += ["## Unreadable", "", *[f"- {md_escape(b)}/report.json" for b in broken], ""]
    path = Path(out_root) / "index.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _sources(info: dict) -> Counter[str]:
    """Experiment -> how many of this report's runs were trained there (report.json "shared")."""
    return Counter(str(run.get("from") or "").split("/", 1)[0] for run in info.get("shared") or [])


def _lent(entries: list[tuple[str, dict]]) -> dict[str, Counter[str]]:
    """Experiment -> {report that reuses its runs: how many} (runs shared through harness.engine.reuse)."""
    out: dict[str, Counter[str]] = {}
    for folder, info in entries:
        for source, n in _sources(info).items():
            out.setdefault(source, Counter())[str(info.get("name", folder))] += n
    return out


def _sharing(info: dict, lent: Counter[str]) -> list[str]:
    """Index lines naming the reports this one shares runs with, both ways (none: no lines)."""
    lines = []
    if per := _sources(info):
        text = ", ".join(f"{n} from {name}" for name, n in sorted(per.items()))
        lines.append(f"- **shared runs:** {md_escape(text)} (trained there, reused here)")
    if lent:
        text = ", ".join(f"{n} by {name}" for name, n in sorted(lent.items()))
        lines.append(f"- **runs reused by other reports:** {md_escape(text)}")
    return lines


def describe_reuse(origins: list[str]) -> str:
    """'5 reused from ablate-pool', or '7 reused (5 from ablate-pool, 2 from ablate-disc)', for source runs
    named ``<experiment>/<run>``."""
    per: dict[str, int] = {}
    for origin in origins:
        experiment = origin.split("/", 1)[0]
        per[experiment] = per.get(experiment, 0) + 1
    parts = [f"{n} from {e}" for e, n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))]
    if len(parts) == 1:
        return f"{len(origins)} reused {parts[0].split(' ', 1)[1]}"
    return f"{len(origins)} reused ({', '.join(parts)})" if origins else "none reused"
