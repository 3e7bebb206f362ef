"""The words a form uses for each field: one vocabulary for form labels and for every message that names a field.

A service names fields by their machine names (``stabilised_at``); a person reads "Stabilised". :func:`field_label`
turns a machine name, or a path such as ``formats[2].stabilised_at``, into the label; names missing from
:data:`FIELD_LABELS` read as their words (``site_code`` -> "Site code").
"""

from __future__ import annotations

import re

#: Field name -> the label a form shows for it (and every message that names it).
FIELD_LABELS: dict[str, str] = {
    # times and days
    "death_at": "Time of death",
    "refrigerated_at": "Refrigerated",
    "start_at": "Autopsy start",
    "end_at": "Autopsy end",
    "excised_at": "Excised",
    "collected_at": "Collected",
    "stabilised_at": "Stabilised",
    "fixation_end_at": "Fixation end",
    "placed_at": "Placed",
    "checked_out_at": "Checked out",
    "returned_at": "Returned",
    "approved_at": "Approved",
    "shipped_at": "Shipped",
    "received_at": "Received",
    "withdrawn_at": "Consent withdrawn",
    "consented_on": "Consent date",
    "initiated_on": "Initiated",
    "established_on": "Established",
    "failed_on": "Failed",
    "ended_on": "Discontinued",
    "passaged_on": "Passaged",
    "tested_on": "Tested",
    "distributed_on": "Distributed",
    "occurred_at": "Time",
    "at": "Time",
    "when": "Time",
    "on": "Date",
    "now": "Now",
    # quantities and measurements
    "quantity": "Quantity",
    "quantity_remaining": "Quantity remaining",
    "quantity_used": "Quantity used",
    "quantity_returned": "Quantity returned",
    "parent_quantity_used": "Quantity used from the parent",
    "portions": "Aliquot quantities",
    "portion": "Aliquot",
    "unit": "Unit",
    "count": "Pieces",
    "concentration_ng_ul": "Concentration",
    "yield_ng": "Yield",
    "a260_280": "A260/280",
    "rin": "RIN",
    "din": "DIN",
    "dv200_pct": "DV200",
    "a260_230": "A260/230",
    "elution_volume_ul": "Elution volume",
    "extraction_method": "Extraction method",
    "extraction_kit": "Extraction kit",
    "slide_ref": "Slide",
    "form_version": "Consent form version",
    "taken_by": "Consent taken by",
    "change": "Consent change",
    "material": "Material held",
    "death_place": "Place of death",
    "death_reported_by": "Death reported by",
    "death_reported_at": "Death reported at",
    "labels_printed_at": "Labels printed",
    "team_notified_at": "Team notified",
    "tumour_cellularity_pct": "Tumour cellularity",
    "necrosis_pct": "Necrosis",
    "identity_match_pct": "Identity match",
    "mouse_content_pct": "Mouse content",
    "decalcification_hours": "Decalcification hours",
    "decalcification_agent": "Decalcification agent",
    "size_mm": "Size",
    "distance_to_tumour_mm": "Distance to tumour",
    "age_at_death": "Age at death",
    "hardy_scale": "Hardy scale",
    "diagnosis_days_before_death": "Days from diagnosis to death",
    "start_days_before_death": "Treatment start",
    "end_days_before_death": "Treatment end",
    "days_before_death": "Days before death",
    "latency_days": "Latency",
    "doubling_time_hours": "Doubling time",
    "target_depth": "Target depth",
    "freeze_thaw_count": "Freeze-thaw cycles",
    "version": "Version",
    "grid_rows": "Grid rows",
    "grid_cols": "Grid columns",
    # codes and references
    "code": "Code",
    "codes": "Specimens",
    "barcode": "Barcode",
    "donor": "Donor",
    "donor_code": "Donor",
    "donor_id": "Donor",
    "case": "Case",
    "case_code": "Case",
    "specimen": "Specimen",
    "specimen_code": "Specimen",
    "parent": "Parent",
    "parent_code": "Parent",
    "parent_id": "Parent",
    "source": "Source specimen",
    "source_code": "Source specimen",
    "model": "Model",
    "model_code": "Model",
    "passage": "Passage",
    "passage_label": "Passage",
    "parent_label": "Parent passage",
    "label": "Label",
    "lesion": "Lesion",
    "lesion_code": "Lesion",
    "region": "Region",
    "region_label": "Region label",
    "sampling_site": "Sampling site",
    "site_code": "Anatomical site",
    "primary_site_code": "Primary site",
    "box": "Box",
    "box_code": "Box",
    "container": "Container",
    "container_code": "Container",
    "position": "Position",
    "order": "Order",
    "order_code": "Order",
    "plan": "Plan",
    "plan_code": "Plan",
    "user": "User",
    "username": "User name",
    # words people type
    "gross_description": "Gross description",
    "description": "Description",
    "notes": "Notes",
    "note": "Note",
    "reason": "Reason",
    "purpose": "Purpose",
    "study": "Study",
    "recipient": "Recipient",
    "distributed_to": "Recipient",
    "prosector": "Prosector",
    "team": "Team",
    "institution": "Institution",
    "name": "Name",
    "agents": "Agents",
    "document_ref": "Consent form reference",
    "pathology_reviewer": "Pathology reviewer",
    "tracking_ref": "Tracking reference",
    "primary_diagnosis": "Primary diagnosis",
    "cause_of_death": "Cause of death",
    "icdo3_topography": "ICD-O-3 topography",
    "icdo3_morphology": "ICD-O-3 morphology",
    "mouse_or_vessel_id": "Mouse or vessel",
    "host_strain_name": "Host strain",
    "host_strain_nomenclature": "Host strain nomenclature",
    "engraftment_site": "Engraftment site",
    "engraftment_type": "Engraftment type",
    "tumour_preparation": "Tumour preparation",
    "humanised": "Humanised host",
    "humanisation_type": "Humanisation",
    "medium": "Culture medium",
    "matrix": "Culture matrix",
    "growth_properties": "Growth properties",
    # choices from a vocabulary
    "kind": "Kind",
    "status": "Status",
    "sex": "Sex",
    "role": "Role",
    "laterality": "Side",
    "tissue_status": "Tissue status",
    "bone_phenotype": "Bone phenotype",
    "imaging_response": "Imaging response",
    "er_status": "ER status",
    "pr_status": "PR status",
    "her2_status": "HER2 status",
    "lineage": "Lineage",
    "material_type": "Material",
    "storage_format": "Storage format",
    "fixative": "Fixative",
    "formats": "Storage formats",
    "format": "Storage format",
    "use": "Use",
    "shipping_temperature": "Shipping temperature",
    "temperature_class": "Temperature",
    "assay": "Assay",
    "identity_method": "Identity method",
    "mycoplasma": "Mycoplasma",
    "given_by": "Consent given by",
    "requested_by": "Requested by",
    "scope": "Consent scope",
    "scopes": "Consent scopes",
    "start_on": "Treatment start",
    "end_on": "Treatment end",
    "occurred_on": "Date of the event",
    "category": "Category",
    "intent": "Intent",
    "best_response": "Best response",
    "line_number": "Treatment line",
    "action": "Action",
    "qc": "QC",
    "changes": "Changes",
    "selection": "Selection",
    "kept_frozen": "Kept frozen",
}

#: The unit a field's number is in: a form shows it after the label ("Size (mm)"), a message after the value.
FIELD_UNITS: dict[str, str] = {
    "concentration_ng_ul": "ng/µl",
    "yield_ng": "ng",
    "dv200_pct": "%",
    "elution_volume_ul": "µl",
    "tumour_cellularity_pct": "%",
    "necrosis_pct": "%",
    "identity_match_pct": "%",
    "mouse_content_pct": "%",
    "size_mm": "mm",
    "distance_to_tumour_mm": "mm",
    "latency_days": "days",
    "doubling_time_hours": "hours",
    "target_depth": "x",
    "age_at_death": "years",
    "diagnosis_days_before_death": "days",
    "start_days_before_death": "days before death",
    "end_days_before_death": "days before death",
    "days_before_death": "days",
    "decalcification_hours": "",  # the label says it already
}

#: Singular label of a list field whose items a path names (``formats[2]`` -> "Format 2").
ITEM_LABELS: dict[str, str] = {
    "formats": "Format",
    "portions": "Aliquot",
    "codes": "Specimen",
    "selection": "Selection row",
}

_ITEM = re.compile(r"^(?P<name>\w+)\[(?P<index>\d+)\]$")
_UNIT_SUFFIX = {"_pct": "%", "_mm": "mm", "_ng": "ng", "_hours": "hours", "_days": "days"}


def _words(name: str) -> str:
    for suffix in _UNIT_SUFFIX:
        if name.endswith(suffix):
            return _words(name[: -len(suffix)])
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


def unit_of(field: str | None) -> str | None:
    """The unit of a field's number (of the last name of a path), or None."""
    if not field:
        return None
    name = _ITEM.sub(r"\g<name>", field.split(".")[-1])
    if name in FIELD_UNITS:
        return FIELD_UNITS[name] or None
    return next((unit for suffix, unit in _UNIT_SUFFIX.items() if name.endswith(suffix)), None)


def form_label(name: str) -> str:
    """What a form writes next to a field's widget: its label and its unit, ``Size (mm)``."""
    unit = unit_of(name)
    return f"{label_of(name)} ({unit})" if unit else label_of(name)


def label_of(name: str) -> str:
    """The label of one field name (no path): its entry in :data:`FIELD_LABELS`, else its words."""
    return FIELD_LABELS.get(name) or _words(name)


def field_label(field: str | None) -> str:
    """The label of a field or of a path to one: ``formats[2].stabilised_at`` -> "Format 2: Stabilised"."""
    if not field:
        return ""
    parts = field.split(".")
    head: list[str] = []
    for part in parts[:-1]:
        match = _ITEM.match(part)
        if match:
            name = match.group("name")
            head.append(f"{ITEM_LABELS.get(name) or label_of(name)} {match.group('index')}")
        else:
            head.append(label_of(part))
    last = parts[-1]
    match = _ITEM.match(last)
    tail = (
        f"{ITEM_LABELS.get(match.group('name')) or label_of(match.group('name'))} {match.group('index')}"
        if match
        else label_of(last)
    )
    return ": ".join([*head, tail])
