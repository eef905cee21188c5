"""results.json of a single-scan study, as a typed object.

``SingleScanResults.to_dict`` gives the JSON (format ``fcinvert-single-scan``, version 1) and
``from_dict`` reads it back, refusing another format or version. Per-scan rows, picks and
statistics stay plain JSON objects (``single_scan.study_results`` documents their keys); the
report fills ``display_energy_max_meV`` and ``figures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fcinvert import __version__
from fcinvert.iohelpers import JsonRecord


@dataclass
class SingleScanResults(JsonRecord):
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

    FORMAT: ClassVar[str] = "fcinvert-single-scan"
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "single-scan results"
