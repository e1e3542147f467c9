"""application/x-image and image/*: the encoded bytes, passed on for the algorithm to decode."""

from ...contenttypes import IMAGE
from . import CodecError, register_decoder

IMAGE_TYPES = (IMAGE, "image/jpeg", "image/png", "image/bmp", "image/gif")


def decode(body, media):
    if not body:
        raise CodecError("image request body is empty")
    return [body]


for _mime in IMAGE_TYPES:
    register_decoder(_mime)(decode)
