"""What may be attached, decided by the bytes, never by the file name: JPEG, PNG, TIFF and WebP images (decoded by
Pillow before they are accepted, then re-encoded from their pixels so no EXIF or other metadata survives: GPS,
device, time) and PDF documents. Anything else (an executable, an archive, a script) is refused whatever it is
called.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from biobank.domain.errors import ValidationError, invalid

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: Magic bytes -> (media type, Pillow format); None: not an image.
_IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff", "WEBP": "image/webp"}
ALLOWED = ("image/jpeg", "image/png", "image/tiff", "image/webp", "application/pdf")
#: The largest image (pixels) decoded: beyond it a file is a decompression bomb, not a photo.
MAX_PIXELS = 80_000_000


def sniff(data: bytes) -> str | None:
    """The media type the content shows, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:1024].lstrip(b"\r\n\t ").startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _what_it_looks_like(data: bytes) -> str:
    if data.startswith(b"\x7fELF"):
        return "an executable (ELF)"
    if data.startswith(b"MZ"):
        return "an executable (Windows)"
    if data.startswith(b"PK\x03\x04"):
        return "an archive (zip)"
    if data.startswith(b"#!"):
        return "a script"
    return "not a JPEG, PNG, TIFF, WebP image or PDF document"


@dataclass(frozen=True)
class Accepted:
    """A file ready for the store: the bytes kept (re-encoded for an image), the media type, a thumbnail (images)."""

    data: bytes
    media_type: str
    thumbnail: bytes | None


def _refuse(filename: str, reason: str) -> ValidationError:
    return invalid("file", filename, reason)


def accept(data: bytes, filename: str, *, max_bytes: int, thumbnail_px: int) -> Accepted:
    """Check ``data`` and prepare it for the store; a ValidationError naming ``file`` when it may not be attached."""
    if not data:
        raise _refuse(filename, "is empty")
    if len(data) > max_bytes:
        raise _refuse(filename, f"is {len(data):,} bytes; at most {max_bytes:,} may be attached")
    media_type = sniff(data)
    if media_type is None:
        raise _refuse(filename, f"is {_what_it_looks_like(data)}; only JPEG, PNG, TIFF and WebP images and PDF "
                                "documents may be attached")
    if media_type == "application/pdf":
        if b"%%EOF" not in data[-2048:]:
            raise _refuse(filename, "is not a complete PDF document (no end-of-file marker)")
        return Accepted(data, media_type, None)
    return _image(data, filename, media_type, thumbnail_px)


def _image(data: bytes, filename: str, media_type: str, thumbnail_px: int) -> Accepted:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if _IMAGE_TYPES.get(str(opened.format)) != media_type:
                    raise _refuse(filename, f"is not the {media_type} its first bytes claim")
                if opened.width * opened.height > MAX_PIXELS:
                    raise _refuse(filename, f"is {opened.width} x {opened.height} pixels; at most {MAX_PIXELS:,} "
                                            "pixels may be attached")
                opened.load()  # decodes every pixel: a truncated or corrupt image fails here
                image = ImageOps.exif_transpose(opened)  # keep the photo upright once its EXIF is gone
                if image is None:  # pragma: no cover - exif_transpose returns an image unless in_place
                    image = opened.copy()
                image.load()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(filename, "is too large an image to decode") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for corrupt data
        raise _refuse(filename, f"is a corrupt or unreadable image ({type(exc).__name__})") from None
    return Accepted(_encode(image, media_type), media_type, _thumbnail(image, thumbnail_px))


def _encode(image: PILImage, media_type: str) -> bytes:
    """The pixels alone in the same format: no EXIF, XMP, ICC comments or text chunks are carried over."""
    out = io.BytesIO()
    if media_type == "image/jpeg":
        pixels = image if image.mode in ("RGB", "L", "CMYK") else image.convert("RGB")
        pixels.save(out, format="JPEG", quality=95, optimize=True)
    elif media_type == "image/png":
        image.save(out, format="PNG", optimize=True)
    elif media_type == "image/tiff":
        image.save(out, format="TIFF", compression="tiff_deflate")
    else:
        image.save(out, format="WEBP", quality=95)
    return out.getvalue()


def _thumbnail(image: PILImage, size: int) -> bytes:
    small = image.copy()
    small.thumbnail((size, size))
    if small.mode not in ("RGB", "L"):
        small = small.convert("RGB")
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return out.getvalue()
