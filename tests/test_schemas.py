"""The result files have schemas: docs/schemas/ holds the JSON Schemas of the typed results
(``scripts/write_schemas.py`` writes them), and the shipped reports' metrics.json and
results.json read back through their typed objects unchanged. (The result JSON of ``invert``
is checked by ``InversionFile`` whenever it is written: tests/test_invert.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fcinvert.analysis.evaluation_metrics import EvaluationMetrics
from fcinvert.analysis.single_scan_results import SingleScanResults
from fcinvert.errors import FcinvertError
from fcinvert.inversion.result_file import InversionFile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from write_schemas import FOLDER, schemas, text  # noqa: E402


def test_committed_schemas_are_those_of_the_typed_results():
    for name, schema in schemas().items():
        assert (FOLDER / name).read_text() == text(schema), f"{name}: run scripts/write_schemas.py"


@pytest.mark.parametrize(
    ("file", "record"),
    [
        ("reports/ge/metrics.json", EvaluationMetrics),
        ("reports/nb/metrics.json", EvaluationMetrics),
        ("reports/ge-single-scan/results.json", SingleScanResults),
    ],
)
def test_shipped_reports_follow_their_schema(file, record):
    content = json.loads((ROOT / file).read_text())
    assert record.from_dict(content, file).to_dict() == content


def test_a_mistyped_field_is_one_line_naming_it():
    content = json.loads((ROOT / "reports/ge/metrics.json").read_text())
    with pytest.raises(FcinvertError, match=r"m.json: not valid evaluation metrics \(seed: "):
        EvaluationMetrics.from_dict({**content, "seed": "zero"}, "m.json")
    with pytest.raises(FcinvertError, match=r"\(models: Field required\)"):
        EvaluationMetrics.from_dict({k: v for k, v in content.items() if k != "models"}, "m")


def test_the_inversion_schema_refuses_unknown_and_missing_fields():
    schema = InversionFile.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"parameters", "dispersion", "force_constants"} <= set(schema["required"])
