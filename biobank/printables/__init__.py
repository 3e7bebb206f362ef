"""Printed documents for the bench and the shipping desk: pick lists, box maps, shipment manifests and label
reprints, as PDF on the one paper size the lab set (``BIOBANK_PAPER_SIZE``: A4 or Letter).

Each ``*_pdf`` function takes a session and returns the document's bytes (a file to write, or a download button's
data); the data come from :mod:`biobank.queries` and the labels from :mod:`biobank.labels`.
"""

from __future__ import annotations

from .boxmap import box_map_pdf, render_box_map
from .document import page_size
from .labels import labels_pdf, reprint_codes
from .manifest import manifest_pdf, render_manifest
from .picklist import PickList, PickRow, pick_list, pick_list_pdf, render_pick_list

__all__ = [
    "PickList",
    "PickRow",
    "box_map_pdf",
    "labels_pdf",
    "manifest_pdf",
    "page_size",
    "pick_list",
    "pick_list_pdf",
    "render_box_map",
    "render_manifest",
    "render_pick_list",
    "reprint_codes",
]
