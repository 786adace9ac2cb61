"""The energy section's options: NVML and RAPL settings are recipe fields, validated like the
others, and every ``energy.*`` field a message, the README or docs/ names exists in the schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from compresslab.protocol import energy_options
from compresslab.recipe import EnergySpec, parse_recipe, source_from_text

REPO = Path(__file__).resolve().parents[2]

# ``energy.<field>[.<field>...]`` not preceded by a name or a dot (``recipe.energy.device`` is
# code, ``compresslab.energy.rapl`` a module); code in backticks or quotes still counts.
_FIELD_RE = re.compile(r"(?<![\w.])energy\.([a-z_]+(?:\.[a-z_]+)*)")
# Attribute access on a variable that happens to be called ``energy``, and a URL.
_NOT_FIELDS = re.compile(r"(?<![\w.])energy\.(to_dict|get|items|keys|org|md)\b")


def _resolves(model: type[BaseModel], path: list[str]) -> bool:
    head, *rest = path
    if head not in model.model_fields:
        return False
    if not rest:
        return True
    annotation: Any = model.model_fields[head].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _resolves(annotation, rest)
    return False


def _string_text(source: str) -> str:
    """The text of a module's string literals, f-string expressions left out (code is not
    a message: ``f"{energy.provenance}"`` reads an attribute of a variable)."""
    import io
    import re
    import tokenize

    parts = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING:
            parts.append(re.sub(r"\{[^{}]*\}", " ", tok.string))
    return "\n".join(parts)


def _named_fields() -> dict[str, list[str]]:
    """Every ``energy.*`` field named in the package's sources, the README and docs/, with where."""
    found: dict[str, list[str]] = {}
    files = [
        *sorted((REPO / "compresslab").rglob("*.py")),
        REPO / "README.md",
        *sorted((REPO / "docs").rglob("*.md")),
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            text = _string_text(text)
        for match in _FIELD_RE.finditer(text):
            if _NOT_FIELDS.match(text, match.start()):
                continue
            found.setdefault(match.group(1), []).append(str(path.relative_to(REPO)))
    return found


def test_every_energy_field_a_message_names_exists() -> None:
    named = _named_fields()
    # The fields the issue found cited but missing are among those checked.
    for field in ("nvml.device_indices", "rapl.poll_interval_s", "rapl.domains", "device"):
        assert field in named, field
    missing = {f: where for f, where in named.items() if not _resolves(EnergySpec, f.split("."))}
    assert not missing, f"messages name energy fields the schema lacks: {missing}"


def _energy(yaml_energy: str) -> EnergySpec:
    text = (
        "name: r\ntask: {name: digits}\ncompression: [{method: dynamic_int8}]\n"
        f"energy:\n{yaml_energy}"
    )
    return parse_recipe(source_from_text(text, path="r.yaml")).energy


def test_nvml_and_rapl_options_are_recipe_fields() -> None:
    spec = _energy(
        "  device: cuda:1\n"
        "  nvml: {device_indices: [2], poll_interval_s: 0.1, host: estimate}\n"
        "  rapl: {domains: [package, dram], poll_interval_s: 0.05, max_power_w: 300, root: /x}\n"
    )
    assert spec.nvml.device_indices == [2] and spec.nvml.host == "estimate"
    assert spec.rapl.poll_interval_s == 0.05 and spec.rapl.max_power_w == 300
    options = energy_options(spec)
    assert options["nvml"] == {"device_indices": [2], "poll_interval_s": 0.1, "host": "estimate"}
    assert options["rapl"]["max_power_w"] == 300 and options["rapl"]["root"] == "/x"


@pytest.mark.parametrize(
    ("yaml_energy", "field", "says"),
    [
        ("  nvml: {device_indices: [-1]}\n", "energy.nvml.device_indices.0", "below the minimum 0"),
        ("  nvml: {device_indices: []}\n", "energy.nvml.device_indices", "at least 1"),
        ("  nvml: {device_indices: [0, 0]}\n", "energy.nvml", "repeats"),
        ("  nvml: {poll_interval_s: 0}\n", "energy.nvml.poll_interval_s", "0.001"),
        ("  nvml: {host: gpu}\n", "energy.nvml.host", "'auto', 'rapl', 'estimate' or 'none'"),
        ("  nvml: {indices: [0]}\n", "energy.nvml.indices", "unknown key"),
        ("  rapl: {poll_interval_s: 5}\n", "energy.rapl.poll_interval_s", "above the maximum 1"),
        ("  rapl: {poll_interval_s: 0.0001}\n", "energy.rapl.poll_interval_s", "0.001"),
        ("  rapl: {max_power_w: 0}\n", "energy.rapl.max_power_w", "must be above 0"),
        ("  rapl: {domains: [package, psys]}\n", "energy.rapl", "covers the whole SoC"),
        ("  rapl: {domains: [dram]}\n", "energy.rapl", "without the CPU package"),
        ("  rapl: {domains: [core]}\n", "energy.rapl.domains.0", "'package', 'dram' or 'psys'"),
        ("  sampler: nvml\n  device: cpu\n", "energy", "measures a GPU"),
    ],
)
def test_bad_options_are_refused_with_field_and_range(
    yaml_energy: str, field: str, says: str
) -> None:
    from compresslab.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        _energy(yaml_energy)
    message = str(info.value)
    assert f"field '{field}'" in message, message
    assert says in message, message
    assert "r.yaml:" in message  # the file and line
