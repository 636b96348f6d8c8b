"""Taking in an image message's photo: fetched the way its channel delivers it, decoded once,
fingerprinted; when it cannot be used the sender is told why, in one wording everywhere."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from bot.photos.files import Photo, PhotoError, PhotoExpired
from bot.photos.hashing import PhotoFacts, analyze
from bot.replies import PHOTO_EXPIRED, PHOTO_UNREADABLE

if TYPE_CHECKING:
    from bot.context import Context


async def read_photo(ctx: Context) -> tuple[Photo, PhotoFacts] | None:
    """The photo and what it shows (fingerprint, capture time, GPS), from the one decode the
    fetch made; None once the sender has been told it could not be used."""
    try:
        photo = await ctx.photo()
        return photo, await asyncio.to_thread(analyze, photo, ctx.config.tz)
    except PhotoExpired:
        ctx.reply(PHOTO_EXPIRED)
    except PhotoError as e:
        logger.info("unusable photo from {}: {}", ctx.person.userid, e)
        ctx.reply(PHOTO_UNREADABLE)
    return None
