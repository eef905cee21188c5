"""results.json of a single-scan study, as a typed object.

``SingleScanResults.to_dict`` gives the JSON (format ``fcinvert-single-scan``, version 1) and
``from_dict`` reads it back, refusing another format or version. Per-scan rows, picks and
statistics stay plain JSON objects (``single_scan.study_results`` documents their keys); the
report fills ``display_energy_max_meV`` and ``figures``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fcinvert import __version__
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import check_format

RESULTS_FORMAT = "fcinvert-single-scan"
RESULTS_VERSION = 1


@dataclass
class SingleScanResults:
    """Every number of a single-scan study. scans_folder: the folder of scans; model: its
    ``path``, architecture, latent samples, seed and grid; parameters: one entry per selected
    FC; all_orientations: the inversion of every scan together; scans: one row per inverted
    scan; skipped: scans left out and why; picks: the best, median and worst scans; summary:
    MSE statistics; refinement: the physics refinement of the picks, or None; timing_s: seconds
    per part."""

    material: str
    scans_folder: str
    all_orientations_file: str
    model: dict
    unit: str
    mse_definition: str
    ranked_by: str
    fc_labels: list[str]
    parameters: list[dict]
    training_box_source: str
    truth_known: bool
    all_orientations: dict
    scans: list[dict]
    skipped: list[dict]
    picks: dict
    summary: dict
    refinement: dict | None
    timing_s: dict
    display_energy_max_meV: float | None = None
    figures: list[dict] | None = None
    fcinvert_version: str = field(default=__version__)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in results.json's order (unset report parts left out)."""
        content: dict[str, Any] = {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "fcinvert_version": self.fcinvert_version,
        }
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            optional = item.name in ("display_energy_max_meV", "figures")
            if item.name != "fcinvert_version" and not (optional and value is None):
                content[item.name] = value
        return content

    @classmethod
    def from_dict(cls, content: dict[str, Any], source: str = "results") -> SingleScanResults:
        """Read back ``to_dict``'s object; another format or version is one error line."""
        check_format(content, RESULTS_FORMAT, RESULTS_VERSION, source, "single-scan results")
        names = {item.name for item in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in content.items() if key in names})
        except TypeError as error:
            raise FcinvertError(f"{source}: incomplete results ({error})") from None
