"""Stage I labels: force constants from a force-field ensemble (or any phonopy FCs) → θ."""

from fcinvert.labels.ensemble import (
    Labeller,
    LabelResult,
    LabelSettings,
    finite_displacement_fcs,
    read_labels,
    run_members,
    summarise,
)
from fcinvert.labels.members import (
    BUILTIN,
    TERSOFF_GE_1989,
    Member,
    factory_member,
    model_file_member,
    offline_members,
    select_members,
)
from fcinvert.labels.transfer import label_force_constants, load_force_constants

__all__ = [
    "BUILTIN",
    "TERSOFF_GE_1989",
    "LabelResult",
    "LabelSettings",
    "Labeller",
    "Member",
    "factory_member",
    "finite_displacement_fcs",
    "label_force_constants",
    "load_force_constants",
    "model_file_member",
    "offline_members",
    "read_labels",
    "run_members",
    "select_members",
    "summarise",
]
