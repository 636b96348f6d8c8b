"""The checker's picture of a fix: the before and after photos side by side, with what each one
is (整改前 / 整改后, when, by whom) and how far apart in place and time they were taken.

One composed JPEG, so that the checker sees both on a phone in one message; the text is drawn
with the CJK font charts use (bot.fonts), since Pillow's own font has no Chinese.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

from bot.fonts import find_cjk_font
from bot.photos.files import PhotoError, open_lazy

PANEL_W, PANEL_H = 480, 480
PAD = 16
HEAD_H, CAPTION_H, FOOT_H = 52, 56, 44
BG, INK, MUTED = (255, 255, 255), (31, 35, 41), (110, 116, 125)
BEFORE_TINT, AFTER_TINT = (217, 48, 38), (25, 160, 91)


@dataclass(frozen=True)
class Panel:
    photo: bytes | None  # None: no photo (the panel says so)
    label: str  # "整改前" / "整改后"
    caption: str  # "11月25日 09:32 李四"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    found = find_cjk_font()
    if found is None:
        return ImageFont.load_default()
    return ImageFont.truetype(found[1], size)


def _fit(data: bytes | None) -> Image.Image | None:
    if data is None:
        return None
    try:
        img = open_lazy(data)
        img.draft("RGB", (PANEL_W * 2, PANEL_H * 2))
        img = ImageOps.exif_transpose(img) or img
        img = img.convert("RGB")
        img.thumbnail((PANEL_W, PANEL_H), Image.Resampling.LANCZOS)
        return img
    except (PhotoError, OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError):
        return None


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill, width: int) -> None:
    font = _font(size)
    # Cut a line that would overflow its panel rather than let it run into the next one.
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text(xy, text, font=font, fill=fill)


def compose(title: str, before: Panel, after: Panel, footer: str) -> bytes:
    """The two panels side by side under `title`, `footer` below; a JPEG."""
    width = PAD * 3 + PANEL_W * 2
    height = HEAD_H + PANEL_H + CAPTION_H + FOOT_H
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    _text(draw, (PAD, 14), title, 24, INK, width - 2 * PAD)
    for i, (panel, tint) in enumerate(((before, BEFORE_TINT), (after, AFTER_TINT))):
        x = PAD + i * (PANEL_W + PAD)
        box = (x, HEAD_H, x + PANEL_W, HEAD_H + PANEL_H)
        draw.rectangle(box, fill=(238, 240, 243))
        img = _fit(panel.photo)
        if img is None:
            _text(draw, (x + 150, HEAD_H + PANEL_H // 2 - 14), "(无照片)", 26, MUTED, PANEL_W)
        else:
            canvas.paste(img, (x + (PANEL_W - img.width) // 2, HEAD_H + (PANEL_H - img.height) // 2))
        draw.rectangle((x, HEAD_H, x + 96, HEAD_H + 36), fill=tint)
        _text(draw, (x + 10, HEAD_H + 4), panel.label, 22, (255, 255, 255), 84)
        _text(draw, (x, HEAD_H + PANEL_H + 14), panel.caption, 20, INK, PANEL_W)
    _text(draw, (PAD, HEAD_H + PANEL_H + CAPTION_H + 8), footer, 20, MUTED, width - 2 * PAD)
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=85)
    return buf.getvalue()
