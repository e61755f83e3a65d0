"""Request decoders and response encoders for every payload format predict accepts."""

from .base import Answer, DecodedRequest, Encoded, Label, Source
from .detect import decode, encode

__all__ = ["Answer", "DecodedRequest", "Encoded", "Label", "Source", "decode", "encode"]
