"""Site labels as prosectors write them ("Femur L", "Rib 6 (R)", "T11 vertebra", "Liver seg 7", "Brain, frontal")
matched to the anatomical-site vocabulary (:mod:`biobank.domain.sites`), never silently.

:func:`match_site` first reads laterality (``L``/``R``/``left``/``right``/``(L)``/``bilat``) and levels (vertebra
``T11``, ``rib 6``, ``segment 7``, lung lobes, brain lobes) out of the label, keeping the finer detail the code does
not carry in ``description``; then matches what is left with rapidfuzz over the site codes, labels (which are the
UBERON names), a few built-in synonyms and the lab's own synonyms (:mod:`biobank.imports.vocabulary_ext`). Every
match comes with a note saying how the label was read; a match below ``site_match_min_score`` (setting) is a
:class:`~biobank.domain.errors.ValidationError` listing the three best candidates with their scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process, utils

from biobank.config import get_settings
from biobank.domain.errors import ValidationError
from biobank.domain.sites import load_sites
from biobank.domain.vocab import Laterality

if TYPE_CHECKING:
    from biobank.imports.vocabulary_ext import Synonyms

#: Built-in spellings of sites seen in autopsy logs (matched like labels: fuzzy, case-insensitive).
SITE_SYNONYMS: dict[str, str] = {
    "spine": "VERTEBRA",
    "vertebral body": "VERTEBRA",
    "vertebrae": "VERTEBRA",
    "VB": "VERTEBRA",
    "LN": "LYMPH_NODE",
    "node": "LYMPH_NODE",
    "lymph node": "LYMPH_NODE",
    "hepatic": "LIVER",
    "pulmonary": "LUNG",
    "renal": "KIDNEY",
    "adrenal": "ADRENAL",
    "splenic": "SPLEEN",
    "marrow": "BONE_MARROW",
    "BM": "BONE_MARROW",
    "iliac crest": "ILIUM",
    "hip": "PELVIS",
    "pelvic bone": "PELVIS",
    "skin nodule": "SKIN",
    "subcut": "SUBCUTANEOUS_TISSUE",
    "subcutaneous": "SUBCUTANEOUS_TISSUE",
    "ascites": "PERITONEAL_FLUID",
    "pleural effusion": "PLEURAL_FLUID",
    "effusion": "PLEURAL_FLUID",
    "meninges": "LEPTOMENINGES",
    "dura": "DURA",
    "calvarium": "SKULL",
    "cranium": "SKULL",
    "breast tissue": "BREAST",
    "mammary": "BREAST",
    "esophagus": "OESOPHAGUS",
    "gall bladder": "GALLBLADDER",
    "womb": "UTERUS",
    "peripheral blood": "BLOOD",
    "whole blood": "BLOOD",
    "muscle": "SKELETAL_MUSCLE",
    "axilla": "LYMPH_NODE_AXILLARY",
    "axillary node": "LYMPH_NODE_AXILLARY",
    "mediastinal node": "LYMPH_NODE_THORACIC",
    "hilar node": "LYMPH_NODE_THORACIC",
    "inguinal node": "LYMPH_NODE_INGUINAL",
    "supraclavicular node": "LYMPH_NODE_CERVICAL",
    "cervical node": "LYMPH_NODE_CERVICAL",
    "retroperitoneal node": "LYMPH_NODE_ABDOMINAL",
    "mediastinal lymph node": "LYMPH_NODE_THORACIC",
    "hilar lymph node": "LYMPH_NODE_THORACIC",
    "supraclavicular lymph node": "LYMPH_NODE_CERVICAL",
    "neck lymph node": "LYMPH_NODE_CERVICAL",
    "retroperitoneal lymph node": "LYMPH_NODE_ABDOMINAL",
    "para-aortic lymph node": "LYMPH_NODE_ABDOMINAL",
    "mesenteric lymph node": "LYMPH_NODE_ABDOMINAL",
    "iliac lymph node": "LYMPH_NODE_PELVIC",
}

_LATERALITY_WORDS: dict[str, Laterality] = {
    "l": Laterality.left,
    "lt": Laterality.left,
    "left": Laterality.left,
    "r": Laterality.right,
    "rt": Laterality.right,
    "right": Laterality.right,
    "bilat": Laterality.bilateral,
    "bilateral": Laterality.bilateral,
    "both": Laterality.bilateral,
    "l+r": Laterality.bilateral,
    "l&r": Laterality.bilateral,
}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
_ROMAN_OUT = {n: r.upper() for r, n in _ROMAN.items()}
_LAT_ALT = r"l\+r|l&r|bilateral|bilat|both|left|right|lt|rt|l|r"
_PAREN = re.compile(r"\(([^()]*)\)|\[([^\[\]]*)\]")
_LAT_TOKEN = re.compile(rf"(?i)(?<![\w+&])({_LAT_ALT})(?![\w+&])\.?")
_VERTEBRA = re.compile(r"(?i)\b([CTL])\s?(\d{1,2})\b")
_RIB = re.compile(r"(?i)\bribs?\s*(?:no\.?\s*)?(\d{1,2})\b|\b(\d{1,2})(?:st|nd|rd|th)\s+rib\b")
_SEGMENT = re.compile(r"(?i)\b(?:seg(?:ment)?\.?|s)\s*(\d|viii|vii|vi|iv|v|iii|ii|i)\b")
_LUNG_LOBE = re.compile(r"(?i)\b(upper|middle|lower)\s+lobe\b|\b([RL])([UML])L\b")
_BRAIN_LOBE = re.compile(r"(?i)\b(frontal|parietal|temporal|occipital|insular|limbic)(?:\s+lobe)?\b")
_SPACES = re.compile(r"[\s,;:/\-]+")


@dataclass(frozen=True)
class SiteMatch:
    """A site label read: the site ``code``, the laterality read out of the label (None when it says none), the
    finer detail the code does not carry (``description``: "rib 6", "frontal lobe", "normal"), the match ``score``
    (0-100) and a ``note`` saying how the label was read."""

    code: str
    laterality: Laterality | None
    description: str | None
    score: float
    note: str


@dataclass
class _Parsed:
    rest: str
    laterality: Laterality | None = None
    code: str | None = None
    details: list[str] | None = None

    def detail(self, text: str) -> None:
        if self.details is None:
            self.details = []
        if text and text.casefold() not in (d.casefold() for d in self.details):
            self.details.append(text)


def _laterality_word(text: str) -> Laterality | None:
    return _LATERALITY_WORDS.get(text.strip().rstrip(".").casefold())


def _parse(label: str) -> _Parsed:
    """Pull laterality, levels and qualifiers out of ``label``; what is left goes to fuzzy matching."""
    parsed = _Parsed(rest=label)
    sites = load_sites()
    text = label

    # Bracketed parts: "(R)" is laterality; "(normal)" is detail kept in the description.
    def paren(match: re.Match[str]) -> str:
        inner = (match.group(1) if match.group(1) is not None else match.group(2) or "").strip()
        side = _laterality_word(inner)
        if side is not None:
            parsed.laterality = side
        elif inner:
            parsed.detail(inner)
        return " "

    text = _PAREN.sub(paren, text)

    # Lung lobes: "L lung upper lobe", "RUL".
    lobe = _LUNG_LOBE.search(text)
    if lobe is not None:
        if lobe.group(2):
            parsed.laterality = Laterality.left if lobe.group(2).upper() == "L" else Laterality.right
            which = {"U": "upper", "M": "middle", "L": "lower"}[lobe.group(3).upper()]
            text = text[: lobe.start()] + " lung " + text[lobe.end() :]
        else:
            which = lobe.group(1).lower()
            text = text[: lobe.start()] + " " + text[lobe.end() :]
        parsed.detail(f"{which} lobe")

    # Vertebra levels: "T11", "L3 vertebra", "C5" (a letter with digits: never laterality).
    vertebra = _VERTEBRA.search(text)
    if vertebra is not None:
        code = f"VERTEBRA_{vertebra.group(1).upper()}{int(vertebra.group(2))}"
        if code in sites:
            parsed.code = code
            text = text[: vertebra.start()] + " " + text[vertebra.end() :]
            text = re.sub(r"(?i)\b(vertebra[el]?|vertebral body|vb|body|spine)\b", " ", text)

    # Rib number: "Rib 6", "6th rib".
    rib = _RIB.search(text)
    if rib is not None:
        number = int(rib.group(1) or rib.group(2))
        parsed.detail(f"rib {number}")
        text = text[: rib.start()] + " rib " + text[rib.end() :]

    # Segments: "Liver seg 7", "segment VII".
    segment = _SEGMENT.search(text)
    if segment is not None:
        raw = segment.group(1).casefold()
        number = int(raw) if raw.isdigit() else _ROMAN[raw]
        parsed.detail(f"segment {number}")
        text = text[: segment.start()] + " " + text[segment.end() :]

    # Brain lobes: "Brain, frontal", "frontal lobe".
    brain = _BRAIN_LOBE.search(text)
    if brain is not None:
        parsed.detail(f"{brain.group(1).lower()} lobe")
        text = text[: brain.start()] + " " + text[brain.end() :]
        if not re.search(r"(?i)\b(brain|cerebr\w*|cortex)\b", text):
            text += " brain"

    # Laterality words left in the text: "Femur L", "L lung", "left kidney".
    def side(match: re.Match[str]) -> str:
        parsed.laterality = _laterality_word(match.group(1))
        return " "

    stripped = _LAT_TOKEN.sub(side, text)
    if _SPACES.sub("", stripped):  # never strip a label down to nothing ("L" alone stays a label)
        text = stripped
    else:
        parsed.laterality = None
    text = re.sub(r"(?i)\bLNs?\b", "lymph node", text) if re.search(r"(?i)\w\W+LNs?\b|\bLNs?\W+\w", text) else text
    parsed.rest = _SPACES.sub(" ", text).strip()
    return parsed


@lru_cache(maxsize=1)
def _builtin_choices() -> dict[str, str]:
    """Spelling -> site code: codes, labels (UBERON names) and their bracketed alternatives, UBERON ids, synonyms."""
    choices: dict[str, str] = {}
    for code, site in load_sites().items():
        choices.setdefault(code.replace("_", " ").lower(), code)
        choices.setdefault(site.label.lower(), code)
        bare = _PAREN.sub(" ", site.label).strip().lower()
        choices.setdefault(bare, code)
        for inner in re.findall(r"\(([^()]*)\)", site.label):
            for part in inner.split(";"):
                part = part.strip().lower()
                if part and not part.startswith(("no ", "incl", "couinaud")) and not _VERTEBRA.fullmatch(part):
                    choices.setdefault(part, code)
        if site.uberon_id:
            choices.setdefault(site.uberon_id.lower(), code)
    for spelling, code in SITE_SYNONYMS.items():
        choices[spelling.lower()] = code
    return choices


def _lab_sites(synonyms: Synonyms | None) -> dict[str, str]:
    return {k.strip().lower(): v for k, v in (synonyms.sites if synonyms is not None else {}).items()}


def _refine(code: str, parsed: _Parsed) -> str:
    """A subsite when the detail names one: LIVER + segment 7 -> LIVER_S7; LUNG + left upper lobe -> LUNG_LUL."""
    sites = load_sites()
    details = parsed.details or []
    if code == "LIVER":
        for detail in details:
            m = re.fullmatch(r"segment (\d)", detail)
            if m and 1 <= int(m.group(1)) <= 8 and f"LIVER_S{int(m.group(1))}" in sites:
                details.remove(detail)
                return f"LIVER_S{int(m.group(1))}"
    if code == "LUNG" and parsed.laterality in (Laterality.left, Laterality.right):
        for detail in details:
            m = re.fullmatch(r"(upper|middle|lower) lobe", detail)
            if m:
                candidate = f"LUNG_{'L' if parsed.laterality is Laterality.left else 'R'}{m.group(1)[0].upper()}L"
                if candidate in sites:
                    details.remove(detail)
                    return candidate
    return code


def _candidates(query: str, choices: dict[str, str], limit: int) -> list[tuple[str, float, str]]:
    """Best ``(code, score, spelling)`` per code, best first; ties go to the closer whole-string match."""
    processed = utils.default_process(query)
    # Short labels ("L", "BM") are compared whole: a partial match of two letters means nothing.
    scorer = fuzz.ratio if len(processed) <= 3 else fuzz.WRatio
    found = process.extract(
        query, list(choices), scorer=scorer, processor=utils.default_process, limit=max(limit * 8, 24)
    )
    best: dict[str, tuple[float, float, str]] = {}
    for spelling, score, _ in found:
        code = choices[spelling]
        tie = fuzz.ratio(processed, utils.default_process(spelling))
        if code not in best or (score, tie) > best[code][:2]:
            best[code] = (float(score), tie, spelling)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
    return [(code, round(score, 1), spelling) for code, (score, _, spelling) in ranked[:limit]]


_FILLER = frozenset({"of", "the", "and", "with", "from", "in", "at", "tissue", "sample", "biopsy", "bx", "piece"})


def _leftover(query: str, spelling: str, parsed: _Parsed) -> None:
    """Words of the label the matched spelling does not cover ("upper pole" of "Kidney upper pole") are detail."""
    covered = utils.default_process(spelling).split()
    rest = [
        word
        for word in query.split()
        if utils.default_process(word) not in _FILLER
        and not any(fuzz.ratio(utils.default_process(word), c) >= 80 for c in covered)
    ]
    if rest and len(rest) < len(query.split()):
        parsed.detail(" ".join(rest))


def _describe(code: str, laterality: Laterality | None, description: str | None) -> str:
    parts = [code]
    if laterality is not None:
        parts.append(laterality.value)
    if description:
        parts.append(description)
    return ", ".join(parts)


def match_site(label: str, *, synonyms: Synonyms | None = None, min_score: float | None = None) -> SiteMatch:
    """Read a prosector's site label: the site code, laterality and finer detail, with a note saying how.

    The lab's synonyms (``synonyms.sites``: label -> site code) are tried first, on the whole label and then on
    what is left once laterality and levels are read out; then the built-in vocabulary, fuzzily. Raises
    :class:`ValidationError` for an empty label, a lab synonym naming no site, or a best match scoring below
    ``min_score`` (default: the ``site_match_min_score`` setting), listing the three best candidates.
    """
    text = "" if label is None else str(label).strip()
    if not text:
        raise ValidationError("Site: the label is empty", field="site", value=label, reason="a site label")
    threshold = get_settings().site_match_min_score if min_score is None else min_score
    sites = load_sites()
    lab = _lab_sites(synonyms)

    def checked(code: str, how: str) -> str:
        target = code.strip().upper()
        if target not in sites:
            raise ValidationError(
                f"Site '{text}': the lab's synonym ({how}) names {code!r}, which is not an anatomical-site code",
                field="site",
                value=text,
                reason=f"the lab's synonym names {code!r}, not a site code",
            )
        return target

    whole = lab.get(text.lower())
    if whole is not None:
        code = checked(whole, f"'{text}'")
        return SiteMatch(code, None, None, 100.0, f"'{text}' read as {code} (the lab's synonym)")
    if text in sites:
        return SiteMatch(text, None, None, 100.0, f"'{text}' read as {text} (site code)")

    parsed = _parse(text)
    rest = parsed.rest
    how = "read as"
    if parsed.code is not None and not rest:
        code, score = parsed.code, 100.0
    elif rest.lower() in lab:
        code, score, how = checked(lab[rest.lower()], f"'{rest}'"), 100.0, "read with the lab's synonym as"
    else:
        query = rest or text
        choices = {**_builtin_choices(), **lab}
        ranked = _candidates(query, choices, 3)
        if not ranked or ranked[0][1] < threshold:
            shown = ", ".join(f"{c} ({s:g})" for c, s, _ in ranked) or "none"
            raise ValidationError(
                f"Site '{text}' matches no anatomical site well enough (best: {shown}; at least {threshold:g} "
                "needed): write the site code, or add the label to the lab's synonyms file",
                field="site",
                value=text,
                reason=f"an anatomical site; best candidates: {shown}",
            )
        code, score, spelling = ranked[0]
        _leftover(query, spelling, parsed)
        if parsed.code is not None:  # "T11 vertebra": the level names the subsite
            if sites[parsed.code].parent_code == code or code == parsed.code:
                code = parsed.code
            else:
                raise ValidationError(
                    f"Site '{text}': the level reads as {parsed.code} but the rest as {code}: write one site",
                    field="site",
                    value=text,
                    reason="one site",
                )
    code = _refine(code, parsed)
    laterality = parsed.laterality
    notes: list[str] = []
    site = sites[code]
    if laterality is not None and not site.laterality_applies:
        root = site
        while root.parent_code is not None and not root.laterality_applies:
            root = sites[root.parent_code]
        if not root.laterality_applies:
            notes.append(f"{laterality.value} ignored: {site.label.lower()} has no laterality")
            laterality = None
    description = "; ".join(parsed.details) if parsed.details else None
    note = f"'{text}' {how} {_describe(code, laterality, description)} (score {score:g})"
    if notes:
        note += "; " + "; ".join(notes)
    return SiteMatch(code, laterality, description, float(score), note)
