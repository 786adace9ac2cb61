"""Text from a recipe or a user's code in the report: marked where it enters, then escaped.

A report mixes the lab's own words (which may use markdown, e.g. backticks) with text it was
given: the recipe's and study's names, variant labels, the currency, the storage URL, reasons
from a library or the user's code. The builder wraps given text in :func:`given`; the markdown
renderer escapes it (``<``, ``>``, ``&`` as entities, markdown syntax with backslashes), so
any CommonMark renderer shows it as written and never as a tag, a link or emphasis; the HTML
renderer drops the marks (:func:`plain`) and escapes everything.
"""

from __future__ import annotations

import html
import re

# Private-use characters around given text: no recipe string can contain them (given() drops them).
_OPEN, _CLOSE = "\ue000", "\ue001"
_GIVEN = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.S)
# Markdown syntax that could start a link, an image, emphasis, code or a table cell; "_" only at a
# word's edge (inside a word, as in prune_channels, it is plain text in CommonMark).
_MD_SYNTAX = re.compile(r"([\\`*\[\]{}#!|~])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def given(text: object) -> str:
    """``text`` from a recipe or a user's code, marked so that renderers show it as text."""
    plain = str(text).replace(_OPEN, "").replace(_CLOSE, "")
    return f"{_OPEN}{plain}{_CLOSE}"


def plain(text: str) -> str:
    """``text`` without the marks of :func:`given` (what it says, for HTML or a terminal)."""
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def _escape_given(text: str) -> str:
    escaped = html.escape(" ".join(text.split()), quote=False)  # one line; < > & as entities
    return _MD_SYNTAX.sub(lambda m: "\\" + m.group(0), escaped)


def md(text: str, *, cell: bool = False) -> str:
    """Markdown for ``text``: given parts escaped, the builder's own markup (backticks) kept."""
    out = []
    for i, part in enumerate(_GIVEN.split(text)):
        if i % 2:
            out.append(_escape_given(part))
            continue
        part = html.escape(part, quote=False)
        out.append(part.replace("|", "\\|").replace("\n", " ") if cell else part)
    return "".join(out)


def html_text(text: str) -> str:
    """``text`` for HTML: the marks dropped, everything escaped."""
    return html.escape(plain(text))
