"""application/x-image and image/*: the encoded bytes, passed on for the algorithm to decode."""

from ...contenttypes import IMAGE
from . import Codec, CodecError, register_codec

IMAGE_TYPES = (IMAGE, "image/jpeg", "image/png", "image/bmp", "image/gif")


class ImageCodec(Codec):
    aliases = ()

    def decode(self, body, media, hints):
        if not body:
            raise CodecError("image request body is empty")
        return [body]


for _mime in IMAGE_TYPES:
    register_codec(type(f"ImageCodec_{_mime.replace('/', '_').replace('-', '_')}", (ImageCodec,),
                        {"content_type": _mime}))
