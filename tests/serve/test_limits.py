"""Upload decoding and limits (recog.serve.limits), without a server."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from serving import animated_gif, jpeg_bytes, png_bomb, png_bytes

from recog.serve.limits import Limits, UploadError, decode_upload, sniff

LIMITS = Limits()


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_supported_format_decodes_to_rgb_uint8(fmt):
    data = _encode(Image.new("RGB", (31, 17), (10, 200, 30)), fmt)
    out = decode_upload(data, LIMITS)
    assert out.image.shape == (3, 17, 31) and out.image.dtype == torch.uint8
    assert out.format == fmt


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_odd_modes_are_converted(mode):
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    data = _encode(Image.new(mode, (9, 7)), fmt)
    assert decode_upload(data, LIMITS).image.shape == (3, 7, 9)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    data = _encode(img, "JPEG", exif=exif.tobytes())
    assert decode_upload(data, LIMITS).image.shape == (3, 40, 20)


def test_format_comes_from_the_content_not_the_name():
    assert sniff(png_bytes())[0] == "PNG"
    assert sniff(jpeg_bytes())[0] == "JPEG"
    with pytest.raises(UploadError) as err:
        sniff(b"GIF is a word in this text file")
    assert err.value.status == 415 and "text" in err.value.message


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"hello world", 415),
        (jpeg_bytes()[:300], 422),
        (png_bytes()[:-30], 422),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422),
    ],
)
def test_unusable_bytes_are_4xx(data, status):
    with pytest.raises(UploadError) as err:
        decode_upload(data, LIMITS)
    assert err.value.status == status and err.value.message


def test_pixel_cap_is_checked_before_decoding():
    bomb = png_bomb()
    assert len(bomb) < 200_000
    with pytest.raises(UploadError) as err:
        decode_upload(bomb, LIMITS)
    assert err.value.status == 413 and "pixels" in err.value.message
    small = Limits(max_pixels=100)
    with pytest.raises(UploadError) as err:
        decode_upload(png_bytes(11, 10), small)
    assert err.value.status == 413 and "110" in err.value.message


def test_long_animation_is_refused_and_short_one_uses_frame_0():
    with pytest.raises(UploadError) as err:
        decode_upload(animated_gif(5000), LIMITS)
    assert err.value.status == 413 and "frames" in err.value.message
    assert decode_upload(animated_gif(3), LIMITS).image.shape == (3, 8, 8)


def test_byte_cap():
    with pytest.raises(UploadError) as err:
        decode_upload(png_bytes(), Limits(max_bytes=50))
    assert err.value.status == 413
