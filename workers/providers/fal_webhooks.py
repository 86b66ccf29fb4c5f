"""Verifying fal's webhooks: an ED25519 signature checked against fal's published JWKS.

fal signs ``"{request id}\\n{user id}\\n{timestamp}\\n{sha256 hex of the body}"`` and sends
``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp`` (Unix seconds) and ``-Signature``
(hex). The headers name no key, so any Ed25519 key of the set may verify. A timestamp more
than ``tolerance_s`` from now is refused, which bounds replays.
"""

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
TOLERANCE_S = 300.0
HEADERS = ("request-id", "user-id", "timestamp", "signature")


class FalWebhookError(ValueError):
    """A webhook that is not verifiably from fal; the message says why."""


def fetch_jwks(client: httpx.Client, url: str = FAL_JWKS_URL) -> dict[str, Any]:
    """The key set fal (or a simulator) publishes."""
    response = client.get(url)
    response.raise_for_status()
    keys: dict[str, Any] = response.json()
    return keys


def verify_fal_webhook(
    headers: Mapping[str, str],
    body: bytes,
    jwks: Mapping[str, Any],
    *,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> str:
    """The request id of a verified webhook; raise ``FalWebhookError`` if it does not verify."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(f"x-fal-webhook-{name}", "").strip() for name in HEADERS]
    if not all(values):
        raise FalWebhookError("missing X-Fal-Webhook-* headers")
    request_id, user_id, timestamp, signature_hex = values
    try:
        sent_at = int(timestamp)
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise FalWebhookError("malformed timestamp or signature") from None
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        raise FalWebhookError(f"timestamp {sent_at} is outside the {tolerance_s:.0f}s tolerance")
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join([request_id, user_id, timestamp, digest]).encode()
    for key in _public_keys(jwks):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return request_id
    raise FalWebhookError("no key of the JWKS verifies the signature")


def _public_keys(jwks: Mapping[str, Any]) -> list[Ed25519PublicKey]:
    keys = []
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, dict) or (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
            continue
        x = str(jwk.get("x", ""))
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            continue
    return keys
