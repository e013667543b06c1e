"""Decoding a response's ``Content-Encoding`` with bounded memory.

httpx decodes each received chunk whole: a 64 KB chunk of a gzip bomb can inflate to 64 MB
before any size check sees it (the probe's 2.1 MB body became 67 MB). :class:`BodyDecoder`
decodes the raw bytes as they arrive, handing out at most :data:`STEP` decoded bytes at a
time (zlib's ``max_length``), through every layer of a chain such as ``gzip, gzip``, so a
reader that stops past its limit holds at most the limit plus a step.

Supported: ``gzip`` (and ``x-gzip``), ``deflate`` (zlib-wrapped or raw, as servers send
both) and ``identity``, which is what ``http_request`` asks for (:data:`ACCEPT_ENCODING`).
Like httpx without the optional packages, an encoding it cannot decode (``br``, ``zstd``)
is passed through as it came.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

#: The Accept-Encoding ``http_request`` sends (a configured header replaces it).
ACCEPT_ENCODING = "gzip, deflate"
#: The most decoded bytes handed out at once.
STEP = 64 * 1024


class CorruptBody(ValueError):
    """The body is not valid data of its declared encoding."""


class _Inflater:
    """One gzip or deflate layer, inflating at most :data:`STEP` bytes per step."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: zlib._Decompress | None = None
        self._head = b""  # deflate: the first bytes, until the header can be recognised
        self._done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._done or not data:
            return
        if self._zlib is None:
            if self.encoding == "deflate" and len(self._head) + len(data) < 2:
                self._head += data
                return
            data, self._head = self._head + data, b""
            self._zlib = zlib.decompressobj(_window_bits(self.encoding, data))
        yield from self._inflate(self._zlib, data)

    def finish(self) -> Iterator[bytes]:
        if self._zlib is None:
            if not self._head:
                return  # no body at all
            # A deflate body of one byte, too short for a zlib header: let zlib judge it.
            data, self._head = self._head, b""
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self._inflate(self._zlib, data)
        if self._done:
            return
        try:
            rest = self._zlib.flush()  # small: _inflate left nothing pending
        except zlib.error as exc:
            raise CorruptBody(f"the {self.encoding} body is corrupt: {exc}") from None
        for start in range(0, len(rest), STEP):
            yield rest[start : start + STEP]

    def _inflate(self, inflater: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                out = inflater.decompress(data, STEP)
                data = inflater.unconsumed_tail
                if out:
                    yield out
                if inflater.eof:
                    self._done = True  # what follows the stream is ignored, as httpx does
                    return
                if not data and len(out) < STEP:
                    return  # all input used and nothing pending
        except zlib.error as exc:
            raise CorruptBody(f"the {self.encoding} body is corrupt: {exc}") from None


def _window_bits(encoding: str, first: bytes) -> int:
    if encoding != "deflate":
        return zlib.MAX_WBITS | 16  # gzip
    # RFC 9110 says zlib-wrapped; some servers send raw deflate. A zlib header: method 8 in
    # the low nibble and the first two bytes a multiple of 31.
    zlib_header = first[0] & 0x0F == 8 and ((first[0] << 8) | first[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


class BodyDecoder:
    """Decodes a body with the given ``Content-Encoding`` header value, step by step.

    Feed it the raw chunks in order (:meth:`feed`), then :meth:`finish`; both yield decoded
    pieces of at most :data:`STEP` bytes, and decode no further than the reader takes.

    Raises (while iterating):
        CorruptBody: The data is not valid for its encoding.
    """

    def __init__(self, content_encoding: str) -> None:
        names = [name.strip().lower() for name in content_encoding.split(",")]
        layers: list[_Inflater] = []
        for name in reversed(names):  # the last encoding applied is undone first
            if name in ("gzip", "x-gzip", "deflate"):
                layers.append(_Inflater("deflate" if name == "deflate" else "gzip"))
        self._layers = layers

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next raw chunk."""
        yield from self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        """The decoded pieces still held once the raw body has ended."""
        for index, layer in enumerate(self._layers):
            for piece in layer.finish():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[index].feed(data):
            yield from self._through(index + 1, piece)
