"""The blocks a report is made of, and their two renderers: markdown and self-contained HTML.

Every string that reaches HTML goes through :func:`html.escape`, recipe-given names included;
in markdown, text given by the recipe or the user's code is escaped (see :mod:`.text`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from compresslab import units
from compresslab.report.text import html_text, md


@dataclass(frozen=True)
class Heading:
    """A section title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    """A paragraph; ``strong`` is shown in bold before ``text``."""

    text: str
    strong: str = ""


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: list[str]


@dataclass(frozen=True)
class TableBlock:
    """A table; ``align`` holds ``l`` or ``r`` per column."""

    headers: list[str]
    rows: list[list[str]]
    align: str = ""


@dataclass(frozen=True)
class Image:
    """A picture file beside the report."""

    path: str
    alt: str


@dataclass(frozen=True)
class Link:
    """A link to a file beside the report."""

    href: str
    text: str


Block = Heading | Para | Bullets | TableBlock | Image | Link


@dataclass
class Document:
    """A report: a title and its blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks."""
        self.blocks.extend(blocks)


def fmt_j(j: float) -> str:
    """Joules with a readable prefix."""
    return units.format_energy(j)


def to_markdown(doc: Document) -> str:
    """``report.md``: text from the recipe escaped, so a renderer shows it as it was written."""
    out = [f"# {md(doc.title)}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + md(b.text), ""]
        elif isinstance(b, Para):
            out += [(f"**{md(b.strong)}** " if b.strong else "") + md(b.text), ""]
        elif isinstance(b, Bullets):
            out += [f"- {md(i)}" for i in b.items] + [""]
        elif isinstance(b, TableBlock):
            align = b.align or "l" * len(b.headers)
            out.append("| " + " | ".join(md(h, cell=True) for h in b.headers) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            out += ["| " + " | ".join(md(c, cell=True) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({b.path})", ""]
        elif isinstance(b, Link):
            out += [f"[{b.text}]({b.href})", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}
th{background:#f3f3f3}td.r{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}code{background:#f3f3f3;padding:0 .2em}
"""


def to_html(doc: Document, *, base_dir: Path) -> str:
    """``report.html``: self-contained (images inlined), every string escaped."""
    e = html_text
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    for b in doc.blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            strong = f"<strong>{e(b.strong)}</strong> " if b.strong else ""
            parts.append(f"<p>{strong}{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, TableBlock):
            align = b.align or "l" * len(b.headers)
            head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>"
                + "".join(f'<td class="{a}">{e(c)}</td>' for c, a in zip(row, align, strict=False))
                + "</tr>"
                for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            path = base_dir / b.path
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f'<p><img alt="{e(b.alt)}" src="data:image/png;base64,{data}"></p>')
        elif isinstance(b, Link):
            parts.append(f'<p><a href="{e(b.href)}">{e(b.text)}</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
