"""The actors' picture when the site has no logo: its initials on a colour of its name."""
from __future__ import annotations

import hashlib
import io
import re
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

# Mastodon wants an avatar of at least 400x400 (it scales it down, never up).
SIZE = 400
_WORDS = re.compile(r"[^\W_]+")


def initials(title: str) -> str:
    """Return up to three initials of the capitalised words of a title ("ILO Asia ..." -> IAP)."""
    words = [w for w in _WORDS.findall(title) if w[0].isupper()] or _WORDS.findall(title)
    return "".join(w[0] for w in words[:3]).upper() or "?"


@lru_cache(maxsize=4)
def drawn(title: str) -> bytes:
    """Return a PNG of SIZE x SIZE pixels: the same bytes for the same title, on any worker."""
    digest = hashlib.sha256(title.encode()).digest()
    # A dark colour (white text reads on it) chosen by the name, so each site keeps its own.
    colour = tuple(40 + byte % 100 for byte in digest[:3])
    image = Image.new("RGB", (SIZE, SIZE), colour)
    text = initials(title)
    font = ImageFont.load_default(size=SIZE // (len(text) + 1) * 2)
    ImageDraw.Draw(image).text((SIZE / 2, SIZE / 2), text, fill="white", font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
