"""``compresslab export``: a trial's variant as a reproducible artefact folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compresslab.cli._app import JsonOpt, RecipeArg, app, out, print_json


@app.command()
def export(
    recipe: RecipeArg,
    trial: Annotated[int, typer.Option(min=0, help="The trial whose variant to export.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the artefact to.")],
    storage: Annotated[str | None, typer.Option(help="Study storage URL.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing, non-empty folder.")
    ] = False,
    allow_unmeasured: Annotated[
        bool,
        typer.Option(
            "--allow-unmeasured",
            help="Export a trial that was not measured (screened out, predicted dominated, "
            "failed) too.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a trial's variant as a reproducible artefact (weights, history, recipe, versions)."""
    from compresslab.api import export_trial
    from compresslab.export import ExportRequest

    request = ExportRequest(
        recipe=recipe,
        trial=trial,
        out_dir=out_dir,
        storage=storage,
        replace=force,
        allow_unmeasured=allow_unmeasured,
    )
    path = export_trial(request)
    if as_json:
        files = sorted(p.name for p in path.iterdir() if p.is_file())
        print_json({"trial": trial, "folder": path, "files": files})
        return
    out.print(
        f"exported trial {trial} to {path} (reload: compresslab.export.load_variant)",
        markup=False,
        highlight=False,
    )
