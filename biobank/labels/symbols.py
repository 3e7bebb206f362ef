"""Module matrices of 2-D barcodes, from existing encoders.

DataMatrix comes from reportlab's ECC 200 widget and QR from segno (a declared dependency). The PDF renderer draws
the matrices itself as one filled path per symbol, rather than one rectangle per module, so that rasterisers and
printer RIPs show no hairline seams between neighbouring modules.
"""

from __future__ import annotations

import segno
from reportlab.graphics.barcode.ecc200datamatrix import ECC200DataMatrix

Matrix = list[list[bool]]

#: Quiet zone, in modules, drawn inside the barcode box. DataMatrix needs one module, which the label padding
#: and the gap to the text (at least 0.6 mm, more than two modules) already provide. QR needs more; two modules
#: are kept inside the box and the padding/gap around it adds the rest.
QUIET_MODULES: dict[str, int] = {"datamatrix": 0, "qr": 2}

#: Square ECC 200 symbol sizes and their data codeword capacity (ISO/IEC 16022, table 7).
DATAMATRIX_SIZES: tuple[tuple[int, int], ...] = (
    (10, 3),
    (12, 5),
    (14, 8),
    (16, 12),
    (18, 18),
    (20, 22),
    (22, 30),
    (24, 36),
    (26, 44),
    (32, 62),
    (36, 86),
    (40, 114),
    (44, 144),
)


def ascii_codewords(value: str) -> list[int]:
    """ECC 200 ASCII encodation: a pair of digits is one codeword, any other ASCII character is its code + 1."""
    out: list[int] = []
    i = 0
    while i < len(value):
        pair = value[i : i + 2]
        if len(pair) == 2 and pair.isdigit() and pair.isascii():
            out.append(130 + int(pair))
            i += 2
        else:
            o = ord(value[i])
            if o > 127:
                raise ValueError(f"cannot encode {value[i]!r} in a DataMatrix ASCII codeword")
            out.append(o + 1)
            i += 1
    return out


def datamatrix_size(value: str) -> int:
    """Smallest square ECC 200 symbol (modules per side) that holds ``value`` in ASCII encodation.

    Printers that encode more compactly (C40) fit the data in a symbol of this size too, so it is safe to force.
    """
    n = len(ascii_codewords(value))
    for size, capacity in DATAMATRIX_SIZES:
        if n <= capacity:
            return size
    raise ValueError(f"{value[:20]!r}... is too long for a DataMatrix symbol")


class _DataMatrix(ECC200DataMatrix):
    """reportlab's 44x44 ECC 200 symbol with ASCII encodation instead of C40.

    reportlab's C40 encoder pads a trailing single C40 value with shift characters, which decoders read as an
    extra NUL: ``"Z"`` or ``"RA0001-L02B-SF"`` scan back with a ``\\x00`` appended. ASCII encodation has no such
    edge case and our codes are short enough for the fixed 144 data codewords.
    """

    def _encode_c40(self, value: str) -> list[int]:
        codewords = ascii_codewords(value)
        if len(codewords) > self.cw_data:
            raise ValueError(f"{value[:20]!r}... is too long for a 44x44 DataMatrix symbol")
        if len(codewords) < self.cw_data:
            codewords.append(129)  # first pad codeword
        while len(codewords) < self.cw_data:
            position = len(codewords) + 1  # 253-state randomising algorithm (ISO/IEC 16022, 5.2.8)
            pad = 129 + (149 * position) % 253 + 1
            codewords.append(pad if pad <= 254 else pad - 254)
        return codewords


def datamatrix_matrix(value: str) -> Matrix:
    """Modules of an ECC 200 DataMatrix encoding ``value``, top row first (True is dark)."""
    symbol = _DataMatrix(value=value)
    symbol.width  # noqa: B018 - computing the size runs reportlab's validate/encode pipeline
    rows = symbol.encoded  # bottom row first: reportlab reverses it for PDF's y axis
    return [[bool(v) for v in row] for row in reversed(rows)]


def qr_matrix(value: str) -> Matrix:
    """Modules of a QR code (error correction M or better) encoding ``value``, top row first, without border."""
    qr = segno.make_qr(value, error="m")
    return [[bool(v) for v in row] for row in qr.matrix]


def qr_version(value: str) -> int:
    """Largest QR version a printer encoding ``value`` at level M can choose (symbol side = 17 + 4 * version).

    Byte mode is the least compact mode for our alphabet, so whatever mode the printer's automatic input picks,
    its symbol is no bigger than this one.
    """
    version = segno.make_qr(value, error="m", mode="byte", boost_error=False).version
    assert isinstance(version, int)
    return version


def matrix(symbology: str, value: str) -> Matrix:
    if symbology == "datamatrix":
        return datamatrix_matrix(value)
    if symbology == "qr":
        return qr_matrix(value)
    raise ValueError(f"unknown symbology {symbology!r}; choose one of datamatrix, qr")


def dark_runs(modules: Matrix) -> list[tuple[int, int, int]]:
    """Horizontal runs of dark modules as (row, first column, length), for drawing a symbol with few shapes."""
    runs: list[tuple[int, int, int]] = []
    for r, row in enumerate(modules):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                runs.append((r, start, c - start))
            else:
                c += 1
    return runs
