"""Test images made in memory."""

from __future__ import annotations

import io

from PIL import Image


def solid_image(color=(40, 160, 60), size=(32, 32), fmt="JPEG") -> bytes:
    "The bytes of a one-colour image: a tiny valid photo for tests."
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()
