"""The one image reader of boxer: the dataset doctor, training, evaluation and predict decode through it.

`read_image(path) -> Tensor[3, H, W]` uint8 RGB, or `ImageReadError` (a `BoxerError`) whose message
is `"<path>: <reason>"`, the same line wherever the file is read. Every image is fully decoded, so
a file that is cut short fails here, not later inside a DataLoader worker.

Pixel modes are converted explicitly (`to_rgb`):

| mode | becomes |
|---|---|
| RGB, RGBX, CMYK, YCbCr | RGB (Pillow's conversion) |
| L, 1 | grey replicated to 3 channels |
| P (palette) | the palette's colours |
| RGBA, LA, PA, La, RGBa | the colour channels; alpha is ignored (as stored, no compositing) |
| I;16* (16-bit grey), I (32-bit int) | `round(v * 255 / 65535)` after clipping to [0, 65535] |
| F (float) | refused: no agreed range |

16-bit RGB PNGs open as RGB in Pillow (the high byte of each sample). PNGs get two checks Pillow
does not make when decoding: every chunk's CRC (what `Image.verify()` checks) and that the image
data inflates to exactly the size the header declares. Pillow pads a short IDAT with zeros
silently; torchvision's `decode_png` crashes the process on one. Images larger than Pillow's
decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, twice the default 89 M pixels) are refused
from their header. EXIF orientation is not applied (COCO boxes refer to the stored pixels).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from boxer.errors import BoxerError

__all__ = [
    "IMAGE_SUFFIXES",
    "PLAIN_MODES",
    "ImageInfo",
    "ImageReadError",
    "inspect_image",
    "read_image",
    "to_rgb",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
PLAIN_MODES = ("RGB", "L", "RGBA", "P")  # read without a warning from the doctor
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_MODE_NOTES = {
    "I;16": "16-bit grey, scaled to 8 bits",
    "I;16L": "16-bit grey, scaled to 8 bits",
    "I;16B": "16-bit grey, scaled to 8 bits",
    "I;16N": "16-bit grey, scaled to 8 bits",
    "I": "32-bit integer grey, clipped to 16 bits and scaled to 8",
    "LA": "grey with alpha, alpha ignored",
    "PA": "palette with alpha, alpha ignored",
    "1": "1-bit black and white",
    "CMYK": "CMYK, converted to RGB",
}


class ImageReadError(BoxerError):
    """An image file that cannot be read; `path` and `reason` are kept apart for reports."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class ImageInfo:
    """What the doctor needs of a readable image: its size on disk and its pixel mode."""

    width: int
    height: int
    mode: str

    @property
    def note(self) -> str | None:
        """Why the mode deserves a warning (None for RGB, L, RGBA, P)."""
        if self.mode in PLAIN_MODES:
            return None
        return f"pixel mode {self.mode} ({_MODE_NOTES.get(self.mode, 'converted to RGB')})"


def _png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG's chunks (a CRC, the image data length), or None."""
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(crc) < 4:
            return f"PNG cut short inside chunk {kind.decode('latin-1')!r} ({len(data)} bytes)"
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            return f"PNG chunk {kind.decode('latin-1')!r} at byte {pos} fails its CRC check"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            return _png_data_problem(header, b"".join(idat))
        pos += 12 + length
    return f"PNG cut short: no IEND chunk ({len(data)} bytes)"


def _png_data_problem(header: bytes | None, compressed: bytes) -> str | None:
    """Whether the IDAT stream inflates to exactly the bytes IHDR declares."""
    if header is None or len(header) != 13:
        return "PNG has no valid IHDR chunk"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if colour not in _PNG_CHANNELS:
        return f"PNG colour type {colour} is invalid"
    bits = _PNG_CHANNELS[colour] * depth
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            expected += h * (1 + -(-w * bits // 8))
    try:
        got = _inflated_size(compressed, limit=expected + 1)
    except zlib.error as err:
        return f"PNG image data is corrupt ({err})"
    if got != expected:
        return f"PNG image data holds {got} bytes, the header declares {expected}"
    return None


def _inflated_size(compressed: bytes, *, limit: int, step: int = 1 << 20) -> int:
    """Bytes a zlib stream inflates to (at most `limit`), holding at most `step` of them at a time."""
    inflater, size, pending = zlib.decompressobj(), 0, compressed
    while pending and size < limit:
        size += len(inflater.decompress(pending, min(step, limit - size)))
        pending = inflater.unconsumed_tail
    return size


def _open(path: Path) -> Image.Image:
    """The fully decoded Pillow image of `path`; ImageReadError for anything wrong with the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "image file is missing") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read the file ({err.strerror or err})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # the header only: refuses a bomb before decoding
            problem = _png_problem(data) if data.startswith(_PNG_SIGNATURE) else None
            if problem is not None:
                raise ImageReadError(path, problem)
            image.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"refused as a decompression bomb ({err})") from None
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, ...
        raise ImageReadError(path, f"image file is unreadable ({type(err).__name__}: {err})") from None
    return image


def to_rgb(image: Image.Image, path: str | os.PathLike = "image") -> np.ndarray:
    """The pixels of a loaded Pillow image as `[H, W, 3]` uint8 RGB (the table in the module doc)."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode == "L":
        return np.repeat(np.asarray(image)[:, :, None], 3, axis=2)
    if mode.startswith("I"):
        wide = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        raise ImageReadError(path, "32-bit float pixels (mode F) have no agreed range; save it as 8-bit")
    try:
        return np.asarray(image.convert("RGB"))
    except (ValueError, OSError) as err:
        raise ImageReadError(path, f"pixel mode {mode} cannot become RGB ({err})") from None


def read_image(path: str | os.PathLike) -> Tensor:
    """The image at `path` as `Tensor[3, H, W]` uint8 RGB.

    Raises:
        ImageReadError: missing, unreadable, cut short, corrupt, too large, or of an unusable mode.
    """
    path = Path(path)
    with _open(path) as image:
        pixels = to_rgb(image, path)  # H, W, 3
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # 3, H, W


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Decodes `path` as `read_image` does (same errors) and returns its size and pixel mode."""
    path = Path(path)
    with _open(path) as image:
        to_rgb(image, path)
        return ImageInfo(image.width, image.height, image.mode)
