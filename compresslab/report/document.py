"""The report as a list of blocks, rendered to markdown (``report.md``) and HTML (``report.html``).

One builder decides what the report says; two small renderers (:mod:`.blocks`) decide how it
looks. Every string that reaches HTML goes through :func:`html.escape`, recipe-given names
included; in markdown, text given by the recipe or the user's code is escaped (marked with
:func:`.text.given`). The sections are built by :mod:`.sections` (the search's outcome),
:mod:`.generation` (a generative task's figures) and :mod:`.method` (how it was measured).
"""

from __future__ import annotations

from compresslab.records import SearchResult
from compresslab.report.blocks import Document
from compresslab.report.cells import frontier_table
from compresslab.report.generation import generation_blocks
from compresslab.report.method import add_left_out, add_machine, add_method
from compresslab.report.sections import (
    add_baseline,
    add_best_saving,
    add_frontier,
    add_projections,
    add_search_cost,
    add_summary,
    add_what_mattered,
)
from compresslab.report.text import given

__all__ = ["build_document", "frontier_table"]


def build_document(result: SearchResult) -> Document:
    """Everything the report says, in order."""
    doc = Document(f"compresslab report: {given(result.recipe_name)}")
    add_summary(doc, result)
    add_baseline(doc, result)
    add_best_saving(doc, result)
    add_frontier(doc, result)
    add_what_mattered(doc, result)
    # A generative task: energy per token and per request, perplexity, sample answers.
    doc.add(*generation_blocks(result))
    add_projections(doc, result)
    add_search_cost(doc, result)
    add_method(doc, result)
    add_left_out(doc, result)
    add_machine(doc, result)
    return doc
