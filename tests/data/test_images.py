"""The one image reader: explicit modes (16-bit, palette, RGBA, grey), every accepted suffix, and a
one-line `ImageReadError` naming the file for anything broken (fuzzed with hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_helpers import png_bytes
from PIL import Image

from boxer.data.images import IMAGE_SUFFIXES, ImageReadError, inspect_image, read_image
from boxer.errors import BoxerError


def test_rgb_png_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 7, 5)
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))


def test_16bit_grey_is_scaled_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.shape == (3, 64, 64) and int(image.min()) == 0 and int(image.max()) == 255
    expected = torch.from_numpy(np.round(ramp / 257.0).astype(np.uint8))
    assert torch.equal(image[0], expected) and torch.equal(image[0], image[2])
    assert inspect_image(tmp_path / "g16.png").note == "pixel mode I;16 (16-bit grey, scaled to 8 bits)"


def test_palette_rgba_grey_and_bilevel(tmp_path):
    palette = Image.new("P", (4, 3))
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.paste(1, (0, 0, 4, 3))
    palette.save(tmp_path / "p.png")
    Image.new("RGBA", (4, 3), (1, 2, 3, 0)).save(tmp_path / "rgba.png")
    Image.new("L", (4, 3), 77).save(tmp_path / "l.png")
    Image.new("1", (4, 3), 1).save(tmp_path / "bw.png")
    assert read_image(tmp_path / "p.png")[:, 0, 0].tolist() == [10, 20, 30]
    assert read_image(tmp_path / "rgba.png")[:, 0, 0].tolist() == [1, 2, 3]  # alpha ignored
    assert read_image(tmp_path / "l.png")[:, 0, 0].tolist() == [77, 77, 77]
    assert read_image(tmp_path / "bw.png")[:, 0, 0].tolist() == [255, 255, 255]
    assert all(inspect_image(tmp_path / f"{n}.png").note is None for n in ("p", "rgba", "l"))


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_accepted_suffix_reads(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    Image.new("RGB", (6, 4), (200, 100, 50)).save(path)
    image = read_image(path)
    assert image.shape == (3, 4, 6)
    assert abs(int(image[0, 2, 3]) - 200) <= 8  # lossy formats are near


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: png_bytes(64, 64, rows=1), "PNG image data holds 193 bytes, the header declares 12352"),
        (lambda: png_bytes(64, 64, rows=64)[:60], "PNG cut short inside chunk 'IDAT'"),
        (lambda: b"not an image", "image file is unreadable (UnidentifiedImageError"),
    ],
)
def test_broken_files_are_one_line_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(make())
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {reason}") and "\n" not in message
    assert info.value.path == str(path)


def test_crc_mismatch_missing_file_and_float_mode(tmp_path):
    data = bytearray(png_bytes(8, 8, rows=8))
    data[-20] ^= 0xFF  # inside the IDAT body
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(BoxerError, match="crc.png: PNG chunk 'IDAT' at byte 33 fails its CRC check"):
        read_image(tmp_path / "crc.png")
    with pytest.raises(BoxerError, match="gone.png: image file is missing"):
        read_image(tmp_path / "gone.png")
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(BoxerError, match=r"f.tif: 32-bit float pixels \(mode F\)"):
        read_image(tmp_path / "f.tif")


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="big.png: refused as a decompression bomb"):
        read_image(tmp_path / "big.png")


def _valid_png() -> bytes:
    return png_bytes(16, 16, rows=16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(_valid_png())).map(lambda n: _valid_png()[:n]),
        st.tuples(st.integers(0, len(_valid_png()) - 1), st.integers(1, 255)).map(
            lambda t: _valid_png()[: t[0]] + bytes([_valid_png()[t[0]] ^ t[1]]) + _valid_png()[t[0] + 1 :]
        ),
        st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    )
)
def test_fuzz_reader_loads_or_raises_one_line(tmp_path, data):
    """Random bytes, truncations and flipped bytes either decode or raise the one-line error."""
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except ImageReadError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
    else:
        assert image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3
