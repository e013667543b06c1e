"""Signing and checking webhook deliveries (the scheme Stripe uses).

A sender signs each request with the hook's secret and puts the signature in one header::

    X-Orchestrator-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

where the HMAC key is the secret (the whole ``whsec_...`` string, as UTF-8) and the signed
message is ``<t>.`` followed by the request body, byte for byte. The receiver refuses a
header it cannot read, a timestamp more than the hook's tolerance (default 300 s) before or
after its own clock, and a signature that matches none of the hook's current secrets (the
previous one is accepted during a rotation's grace); signatures are compared in constant time.
Several ``v1=`` entries may be given (one per secret while rotating); other schemes are
ignored.

Shell::

    t=$(date +%s)
    sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    curl -H "X-Orchestrator-Signature: t=$t,v1=$sig" -H 'Content-Type: application/json' \\
         -d "$body" https://host/hooks/<hook id>
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "X-Orchestrator-Signature"
SCHEME = "v1"
_MAX_HEADER_CHARS = 1024
_MAX_SIGNATURES = 4


class SignatureError(Exception):
    """Why a delivery's signature is refused (the message is safe to show the sender)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Orchestrator-Signature`` header value for ``body`` (now, unless given)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},{SCHEME}={signature(secret, at, body)}"


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance: float,
    now: float | None = None,
) -> int:
    """Check a delivery's signature header; return its timestamp.

    Raises:
        SignatureError: no header, one that cannot be read, a timestamp outside
            ``tolerance`` seconds of ``now``, or no signature made with any of ``secrets``.
    """
    if not header:
        raise SignatureError(f"the request has no {SIGNATURE_HEADER} header")
    if len(header) > _MAX_HEADER_CHARS:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is too long")
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == SCHEME and len(given) < _MAX_SIGNATURES:
            given.append(value.strip().lower())
    if timestamp is None or not given:
        raise SignatureError(
            f"the {SIGNATURE_HEADER} header must read 't=<unix seconds>,{SCHEME}=<hex HMAC>'"
        )
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"the signature's timestamp is more than {tolerance:g}s away from the receiver's "
            "clock (a stale, replayed or future-dated request, or a clock out of sync)"
        )
    matched = False
    for secret in secrets:
        expected = signature(secret, timestamp, body).encode()
        for candidate in given:
            # Every pair is compared (no early exit): the time taken does not say which.
            matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    if not matched:
        raise SignatureError("the signature does not match the hook's secret")
    return timestamp


def delivery_digest(timestamp: int, body: bytes) -> str:
    """A digest of the signed message: the deduplication key of a delivery that names none
    (a replay of the same signed request maps to the same execution)."""
    return hashlib.sha256(str(timestamp).encode() + b"." + body).hexdigest()
