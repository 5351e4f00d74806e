"""Studio's UI→API converter against ComfyUI's own frontend, on every official template.

The expected prompts were produced by the real frontend (``app.graphToPrompt()``) on a real
ComfyUI, 0.33.0 and 0.3.64 (see tests/capture/README.md). Issue 10's goal is every template; until
the converter gets there this is a floor that only rises: a change that makes a single template
convert worse than today fails here, and a change that fixes some should raise the floor.
"""

from pathlib import Path

import pytest

from tests.capture.comfy_templates import compare

FIXTURES = Path(__file__).parent / "fixtures" / "comfyui-templates"
# Templates whose converted prompt equals the frontend's, node for node and input for input.
FLOOR = {"0.33.0": 498, "0.3.64": 155}


@pytest.mark.parametrize("version", sorted(FLOOR))
def test_templates_convert_at_least_as_well_as_before(version: str) -> None:
    summary = compare(FIXTURES / version, None, 0)
    assert summary["compared"] >= 170
    assert summary["outcomes"].get("match", 0) >= FLOOR[version], summary["outcomes"]
