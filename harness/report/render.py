"""Render a report (a list of sections of blocks) to GitHub Markdown and to one self-contained HTML file.

Reports and sweep reports share this: build ``Section``s of ``Text``, ``Bullets``, ``KeyValues``, ``Table``,
``Code`` and ``Figure`` blocks, then call ``to_markdown`` / ``to_html``. Every string is treated as untrusted
(names, questions and errors come from specs and run folders): it is escaped in both outputs, never
interpreted as markup (HTML: a jinja2 template with autoescaping).
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

MISSING = "–"


@dataclass(frozen=True)
class Text:
    text: str
    bold: bool = False


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class KeyValues:
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # rendered as is: the index is ignored, floats are shown with 4 significant digits
    caption: str = ""


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Figure:
    path: Path  # a PNG inside the report folder; Markdown links it relatively, HTML embeds it
    caption: str


Block = Text | Bullets | KeyValues | Table | Code | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    folded: bool = False  # reference material a newcomer can skip: collapsed in HTML, moved last in Markdown


def fmt(value: object) -> str:
    """Numbers for humans: 4 significant digits, integers as integers, NaN/None as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    try:
        if pd.isna(value):
            return MISSING
    except (TypeError, ValueError):
        pass
    return str(value)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}|#~!])")


def md_escape(text: object) -> str:
    """Text that GitHub Markdown shows literally: HTML entities for <>&, backslashes for markup characters."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return re.sub(r"^(\s*)([-+]|\d+[.)])(?=\s|$)", r"\1\\\2", s)  # no accidental list item


def _md_table(table: Table) -> str:
    df = table.frame
    head = "| " + " | ".join(md_escape(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(md_escape(fmt(v)) for v in row) + " |" for row in df.itertuples(index=False)]
    lines = ([f"*{md_escape(table.caption)}*", ""] if table.caption else []) + [head, rule, *body]
    return "\n".join(lines)


def _md_block(block: Block, base: Path) -> str:
    if isinstance(block, Text):
        return f"**{md_escape(block.text)}**" if block.bold else md_escape(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {md_escape(item)}" for item in block.items)
    if isinstance(block, KeyValues):
        return "\n".join(f"- **{md_escape(k)}:** {md_escape(v)}" for k, v in block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Code):
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", block.text)), default=0))
        return f"{fence}\n{block.text}\n{fence}"
    if isinstance(block, Figure):
        rel = block.path.relative_to(base).as_posix()
        return f"![{md_escape(block.caption)}]({rel})\n\n*{md_escape(block.caption)}*"
    raise TypeError(f"unknown block {type(block).__name__}")


def to_markdown(title: str, sections: list[Section], base: Path) -> str:
    """GitHub Markdown; figures are linked relative to ``base`` (the folder the .md is written to).
    Folded sections come last, after everything a reader needs first."""
    parts = [f"# {md_escape(title)}"]
    for sec in [s for s in sections if not s.folded] + [s for s in sections if s.folded]:
        parts.append(f"## {md_escape(sec.title)}")
        parts.extend(_md_block(b, base) for b in sec.blocks)
    return "\n\n".join(parts) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{border-bottom:1px solid #eee;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
caption{caption-side:top;font-style:italic;text-align:left;padding:.3em 0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;white-space:pre-wrap}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-style:italic;color:#555}nav a{margin-right:1em;white-space:nowrap}.scroll{overflow-x:auto}
summary{cursor:pointer;margin-top:2em}summary h2{display:inline;border:none}
"""

# Autoescaped: every {{ value }} is HTML-escaped unless marked safe (only the constant CSS is).
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css|safe }}</style></head><body>
<h1>{{ title }}</h1>
<nav>{% for sec in sections %}<a href="#s{{ loop.index0 }}">{{ sec.title }}</a> {% endfor %}</nav>
{% for sec in sections %}
<section id="s{{ loop.index0 }}">
{%- if sec.folded %}<details><summary><h2>{{ sec.title }}</h2></summary>
{%- else %}<h2>{{ sec.title }}</h2>{% endif %}
{% for block in sec.blocks %}{{ render(block) }}
{% endfor %}
{%- if sec.folded %}</details>{% endif %}</section>
{% endfor %}
</body></html>
"""

_BLOCK = """
{%- if kind == "Text" -%}
<p>{% if block.bold %}<strong>{{ block.text }}</strong>{% else %}{{ block.text }}{% endif %}</p>
{%- elif kind == "Bullets" -%}
<ul>{% for item in block.items %}<li>{{ item }}</li>{% endfor %}</ul>
{%- elif kind == "KeyValues" -%}
<ul>{% for key, value in block.items %}<li><strong>{{ key }}:</strong> {{ value }}</li>{% endfor %}</ul>
{%- elif kind == "Table" -%}
<div class="scroll"><table>{% if block.caption %}<caption>{{ block.caption }}</caption>{% endif %}
<thead><tr>{% for col in block.frame.columns %}<th>{{ col }}</th>{% endfor %}</tr></thead><tbody>
{%- for row in rows(block) %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor -%}
</tbody></table></div>
{%- elif kind == "Code" -%}
<pre><code>{{ block.text }}</code></pre>
{%- elif kind == "Figure" -%}
<figure><img src="data:image/png;base64,{{ png(block) }}" alt="{{ block.caption }}">
<figcaption>{{ block.caption }}</figcaption></figure>
{%- endif -%}
"""


def _rows(table: Table) -> list[list[str]]:
    return [[fmt(v) for v in row] for row in table.frame.itertuples(index=False)]


def _png(figure: Figure) -> str:
    return base64.b64encode(figure.path.read_bytes()).decode("ascii")


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_BLOCK_TEMPLATE = _ENV.from_string(_BLOCK, globals={"rows": _rows, "png": _png})


def _render_block(block: Block) -> Markup:
    if not isinstance(block, Block):
        raise TypeError(f"unknown block {type(block).__name__}")
    return Markup(_BLOCK_TEMPLATE.render(block=block, kind=type(block).__name__))


_PAGE_TEMPLATE = _ENV.from_string(_PAGE, globals={"render": _render_block})


def to_html(title: str, sections: list[Section]) -> str:
    """One self-contained page: CSS inline, figures as base64 data URIs, nothing fetched from anywhere.
    Folded sections (exploratory material) are collapsed in a ``<details>``, in their place."""
    return _PAGE_TEMPLATE.render(title=title, sections=sections, css=_CSS)
