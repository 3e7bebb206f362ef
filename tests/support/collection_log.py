"""A lab's own wide collection log for the ``collection_log`` import tests, and its mapping file.

:func:`write_log` writes a Latin-1 CSV of one row per specimen (at least 200 rows over several cases) as a lab keeps
it: separate date and time of death in mixed date styles, time-only refrigeration, start, end, excision and
stabilisation cells that cross midnight, prosectors' site labels ("Femur L", "Rib 6 (R)", "Liver seg 7"),
preservation synonyms and qualifiers ("LN2", "snap-frozen", "viable (DMSO)", "Whole blood EDTA"), the weight's unit in
the header ("Weight (mg)") or in the cell ("4 mL"), notes with fixation and decalcification, container paths that do
not exist yet (``--create-containers``), one exact duplicate row and, on request, one position taken twice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

HEADERS = ("Case", "Patient", "Sex", "Date of death", "Time of death", "Fridge", "Start", "End", "Site", "Lesion",
           "Region", "Preservation", "Excised", "Into fixative/LN2", "Weight (mg)", "Pieces", "Box", "Position",
           "Tech", "Notes")

MAPPING = """\
[columns]
"Case" = "case"
"Patient" = "donor"
"Sex" = "donor_sex"
"Date of death" = "death_date"
"Time of death" = "death_time"
"Fridge" = "refrigerated_time"
"Start" = "autopsy_start"
"End" = "autopsy_end"
"Site" = "site"
"Lesion" = "lesion"
"Region" = "region"
"Preservation" = "preservation"
"Excised" = "excised_time"
"Into fixative/LN2" = "stabilised_time"
"Weight (mg)" = "quantity"
"Pieces" = "pieces"
"Box" = "box"
"Position" = "position"
"Tech" = "collected_by"
"Notes" = "notes"

[values.preservation]
"LN2" = "snap_frozen"

[values.site]
"Liver seg 7" = "LIVER"

[values.lesion_kind]
"P" = "primary"
"M1" = "metastasis"
"M2" = "metastasis"

[patterns]
decalcification = '(?i)(?P<agent>EDTA|formic|HCl)[^0-9]*(?P<hours>\\d+(?:\\.\\d+)?)\\s*h'
fixation_hours = '(?i)fix\\w*\\s*(?P<hours>\\d+(?:\\.\\d+)?)\\s*h'

[options]
date_order = "DMY"
timezone = "Europe/London"
"""

#: (case, donor, sex, date of death as written, time of death, fridge, start, end): case 1 dies late and is
#: sampled after midnight; case 2 has no start or end (estimated); the date styles differ per case.
CASES = (
    ("AUT-01", "RA-1001", "F", "14/03/2026", "22:40", "23:30", "00:50", "04:10"),
    ("AUT-02", "RA-1002", "M", "2026-03-16", "09:15", "10:00", "", ""),
    ("AUT-03", "RA-1003", "female", "18 Mar 2026", "20:05", "21:00", "23:10", "03:20"),
    ("AUT-04", "RA-1004", "M", "20.03.2026", "06:30", "07:00", "12:00", "15:45"),
)
#: (lesion label, site label, regions): P is the primary (mapped kind), LN has no kind (unknown, flagged).
LESIONS = (("P", "Liver seg 7", "ABC"), ("M1", "Femur L", "AB"), ("M2", "Rib 6 (R)", "AB"),
           ("LN", "Axillary LN (L)", "A"))
#: (preservation as written, weight cell, box path, pieces)
FORMATS = (
    ("LN2", "50", "LN2-T1/B{case}", 1),
    ("snap-frozen", "45", "LN2-T1/B{case}", 1),
    ("FFPE", "", "RT-CAB/FFPE-D{case}", 1),
    ("viable (DMSO)", "100", "LN2-T1/V{case}", 1),
    ("RNAlater", "30", "FRZ-80/R1/RNA{case}", 1),
    ("OCT", "", "FRZ-80/R1/OCT{case}", 1),
)


@dataclass
class Log:
    path: Path
    mapping: Path
    rows: int
    cases: int
    specimens: int
    #: Row number (as the spreadsheet shows it) of the duplicate, and of the row whose position is taken.
    duplicate_row: int = 0
    taken_row: int = 0
    notes_rows: list[int] = field(default_factory=list)


def _minutes(clock: str, add: int) -> str:
    h, m = (int(x) for x in clock.split(":"))
    total = (h * 60 + m + add) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def write_log(directory: Path, *, taken: bool = False, cases: int = 4, name: str = "log.csv") -> Log:
    """Write the log (and ``map.toml``) into ``directory``; ``taken`` puts one row on a position already used."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADERS)
    duplicate_row = taken_row = 0
    positions: dict[str, int] = {}
    last: list[str] = []
    state = {"first_of_case": True, "number": 1, "specimens": 0}

    def row(info: tuple[int, tuple[str, ...]], site: str, lesion: str, region: str, fmt: str, weight: str, box: str,
            pieces: int, excised: str, stabilised: str, notes: str) -> list[str]:
        index, (case, donor, sex, day, death, fridge, start, end) = info
        first = bool(state["first_of_case"])
        where = box.format(case=index)
        position = ""
        if where:
            used = positions.get(where, 0)
            position = str(used + 1) if "FFPE" in where else f"{chr(65 + used // 10)}{used % 10 + 1}"
            positions[where] = used + pieces
        cells = [case, donor, sex if first else "", day if first or index % 2 else "",
                 death if first or index % 2 else "", fridge if first else "", start if first else "",
                 end if first else "", site, lesion, region, fmt, excised, stabilised, weight, str(pieces), where,
                 position, "JÖ" if index % 2 else "M. Brûlé", notes]
        state["first_of_case"] = False
        state["number"] += 1
        state["specimens"] += pieces
        return cells

    for index, case_info in enumerate(CASES[:cases], start=1):
        info = (index, case_info)
        state["first_of_case"] = True
        death, start = case_info[4], case_info[6]
        base = death if start == "" else start
        minute = 5

        for lesion, site, regions in LESIONS:
            for region in regions:
                excised = _minutes(base, minute)
                for k, (fmt, weight, box, pieces) in enumerate(FORMATS):
                    stabilised = _minutes(base, minute + 3 + k)
                    notes = ""
                    if fmt == "FFPE":
                        notes = "fixed 24h in NBF"
                        if lesion in ("M1", "M2"):
                            notes += "; decal EDTA 48 h"
                    # case 4 writes no excision time for its LN lesion: the earliest stabilisation is used
                    cells = row(info, site, lesion, region, fmt, weight, box, pieces,
                                "" if (index == 4 and lesion == "LN") else excised, stabilised, notes)
                    writer.writerow(cells)
                    last = cells
                minute += 12
        # normal tissue and blood: no lesion
        for site, fmt, weight, box in (("Spleen (normal)", "LN2", "40", "LN2-T1/B{case}"),
                                       ("Brain, frontal", "FFPE", "", "RT-CAB/FFPE-D{case}"),
                                       ("Blood", "Whole blood EDTA", "4 mL", "FRZ-80/R1/BL{case}")):
            excised = _minutes(base, minute)
            last = row(info, site, "", "", fmt, weight, box, 1, excised, _minutes(base, minute + 2), "Prélèvement normal")
            writer.writerow(last)
            minute += 7
    writer.writerow(last)  # an exact duplicate of the row before
    number = state["number"] + 1
    duplicate_row = number
    text = out.getvalue()
    if taken:
        lines = text.splitlines(keepends=True)
        # the second LN2 row of case 1 takes the first LN2 row's position
        first_ln2 = next(i for i, line in enumerate(lines) if ",LN2," in line and "LN2-T1/B1" in line)
        second = next(i for i, line in enumerate(lines) if i > first_ln2 and ",snap-frozen," in line)
        parts = next(csv.reader([lines[second]]))
        parts[HEADERS.index("Position")] = next(csv.reader([lines[first_ln2]]))[HEADERS.index("Position")]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(parts)
        lines[second] = buffer.getvalue()
        taken_row = second + 1
        text = "".join(lines)
    path = directory / name
    path.write_bytes(text.encode("latin-1"))
    mapping = directory / "map.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return Log(path, mapping, number - 1, cases, state["specimens"], duplicate_row, taken_row)
