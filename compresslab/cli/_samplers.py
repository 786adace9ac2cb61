"""``compresslab samplers``: every energy sampler, whether it can run here, and why (not)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from compresslab.cli._app import JsonOpt, app, out, print_json


@app.command()
def samplers(as_json: JsonOpt = False) -> None:
    """List every energy sampler, whether it can run here, and why (not)."""
    from compresslab.energy import describe_samplers

    rows = describe_samplers()
    if as_json:
        print_json(
            {
                "samplers": [
                    {"name": n, "provenance": p, "available": a.available, "reason": a.reason}
                    for n, p, a in rows
                ]
            }
        )
        return
    table = Table(title="energy samplers (auto tries rapl, then estimate; model only when named)")
    for col in ("sampler", "provenance", "available", "why"):
        table.add_column(col)
    for n, p, a in rows:
        table.add_row(n, str(p), "yes" if a.available else "no", escape(a.reason))
    out.print(table)
