"""The study database opens in optuna-dashboard, as the README says."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from tests_support import small

from compresslab.api import load_recipe, search

pytestmark = pytest.mark.slow


def test_optuna_dashboard_lists_the_study_and_its_trials(tmp_path: Path, digits_task: Any) -> None:
    from optuna_dashboard import wsgi

    recipe = load_recipe(small(tmp_path, search={"trials": 2, "sampler": "random", "seed": 4}))
    result = search(recipe)
    app = wsgi(result.storage)

    def get(path: str) -> Any:
        environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        status: list[str] = []
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
        assert status[0].startswith("200"), (path, status, body[:200])
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == [recipe.study_name]
    assert studies[0]["directions"] == ["maximize", "minimize"]
    detail = get(f"/api/studies/{studies[0]['study_id']}")
    assert len(detail["trials"]) == len(result.trials)
