"""Module matrices of 2-D barcodes, from existing encoders.

DataMatrix comes from reportlab's ECC 200 widget and QR from segno (a declared dependency). The PDF renderer draws
the matrices itself as one filled path per symbol, rather than one rectangle per module, so that rasterisers and
printer RIPs show no hairline seams between neighbouring modules.
"""

from __future__ import annotations

import segno
from reportlab.graphics.barcode.ecc200datamatrix import ECC200DataMatrix

Matrix = list[list[bool]]

#: Quiet zone, in modules, kept light inside the barcode box. DataMatrix needs one module. QR needs four;
#: two are kept inside the box and the label padding or text gap (0.6 mm or more) around it adds the rest.
QUIET_MODULES: dict[str, int] = {"datamatrix": 1, "qr": 2}

#: Square ECC 200 symbols up to 44x44 (ISO/IEC 16022, table 7): modules per side -> (data codewords, error
#: correction codewords, data regions per side). All of them use one Reed-Solomon block, which is what
#: reportlab's encoder implements.
DATAMATRIX_SPECS: dict[int, tuple[int, int, int]] = {
    10: (3, 5, 1),
    12: (5, 7, 1),
    14: (8, 10, 1),
    16: (12, 12, 1),
    18: (18, 14, 1),
    20: (22, 18, 1),
    22: (30, 20, 1),
    24: (36, 24, 1),
    26: (44, 28, 1),
    32: (62, 36, 2),
    36: (86, 42, 2),
    40: (114, 48, 2),
    44: (144, 56, 2),
}


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
    for size, (capacity, _, _) in DATAMATRIX_SPECS.items():
        if n <= capacity:
            return size
    raise ValueError(f"{value[:20]!r}... is too long for a DataMatrix symbol")


class _DataMatrix(ECC200DataMatrix):
    """reportlab's ECC 200 encoder, sized to the data and with ASCII instead of C40 encodation.

    reportlab hard-codes the 44x44 symbol (Royal Mail's size); its Reed-Solomon coder and module placement are
    the generic ECC 200 algorithms, so setting the size attributes gives the smallest symbol that holds the code.
    On a 9.6 mm cassette barcode that means 0.5 mm modules (18x18) instead of 0.22 mm, which cheap scanners and
    worn thermal heads cope with much better.

    reportlab's C40 encoder pads a trailing single C40 value with shift characters, which decoders read as an
    extra NUL (``"Z"`` or ``"RA0001-L02B-SF"`` scan back with ``\\x00`` appended). ASCII encodation has no such
    edge case, and for short codes with digit runs like ours it needs no more codewords than C40.
    """

    def __init__(self, value: str) -> None:
        super().__init__(value=value)
        size = datamatrix_size(value)
        data_cw, ecc_cw, regions = DATAMATRIX_SPECS[size]
        self.row_modules = self.col_modules = size
        self.row_regions = self.col_regions = regions
        self.cw_data, self.cw_ecc = data_cw, ecc_cw
        self.row_usable_modules = self.col_usable_modules = size - 2 * regions

    def _encode_c40(self, value: str) -> list[int]:
        codewords = ascii_codewords(value)
        if len(codewords) > self.cw_data:
            raise ValueError(f"{value[:20]!r}... does not fit a {self.row_modules}x{self.col_modules} symbol")
        if len(codewords) < self.cw_data:
            codewords.append(129)  # first pad codeword
        while len(codewords) < self.cw_data:
            position = len(codewords) + 1  # 253-state randomising algorithm (ISO/IEC 16022, 5.2.8)
            pad = 129 + (149 * position) % 253 + 1
            codewords.append(pad if pad <= 254 else pad - 254)
        return codewords

    def _create_matrix(self, data: list[int]) -> list[list[int]]:
        matrix = super()._create_matrix(data)
        rows, cols = self.row_usable_modules, self.col_usable_modules
        if rows * cols % 8 == 4:
            # Sizes whose data area is 4 bits larger than the codewords (12, 16, 20, 24) leave the bottom-right
            # 2x2 modules unplaced; the standard fills them with a fixed pattern, reportlab leaves them light.
            matrix[rows - 1][cols - 1] = matrix[rows - 2][cols - 2] = 1
            matrix[rows - 1][cols - 2] = matrix[rows - 2][cols - 1] = 0
        return matrix


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
