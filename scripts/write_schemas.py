"""Write the JSON Schemas of fcinvert's result files into docs/schemas/ (run after changing a
typed result; tests/test_schemas.py checks they match):

    .venv/bin/python scripts/write_schemas.py

inversion.schema.json: the result JSON of ``invert`` (``inversion.result_file.InversionFile``);
evaluation-metrics.schema.json: metrics.json of ``evaluate``
(``analysis.evaluation_metrics.EvaluationMetrics``); single-scan.schema.json: results.json of
``single-scan`` (``analysis.single_scan_results.SingleScanResults``).
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def schemas() -> dict[str, dict]:
    """File name → JSON Schema of every typed result file."""
    from fcinvert.analysis.evaluation_metrics import EvaluationMetrics
    from fcinvert.analysis.single_scan_results import SingleScanResults
    from fcinvert.inversion.result_file import InversionFile

    inversion = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **InversionFile.model_json_schema(mode="serialization"),
    }
    return {
        "inversion.schema.json": inversion,
        "evaluation-metrics.schema.json": EvaluationMetrics.json_schema(),
        "single-scan.schema.json": SingleScanResults.json_schema(),
    }


def text(schema: dict) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (FOLDER / name).write_text(text(schema))
        print(f"wrote {FOLDER / name}")


if __name__ == "__main__":
    main()
