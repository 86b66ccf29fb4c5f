"""Verifying provider callbacks, each the way its provider signs them.

Replicate signs as Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``) with the account's
``whsec_`` secret; the stock ``standardwebhooks`` library checks it and refuses timestamps
more than 5 minutes off.

fal signs ``"{request id}\\n{user id}\\n{timestamp}\\n{sha256 hex of the body}"`` with
ED25519 and sends ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp`` (Unix seconds)
and ``-Signature`` (hex), checked against the key set fal publishes as a JWKS. The headers
name no key, so any Ed25519 key of the set may verify; ``KeySets`` caches each set and
fetches it again when no cached key verifies (fal rotated its keys), at most every
``REFRESH_MIN_S``. A timestamp more than ``tolerance_s`` from now is refused.

Each verified callback has a ``delivery`` (the webhook or request id with its timestamp)
that a replay repeats, and the provider's id of the job it is about.
"""

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook, WebhookVerificationError

from schema.errors import SignatureError
from schema.routes import FAL_JWKS_URL

TOLERANCE_S = 300.0
REFRESH_MIN_S = 60.0
FAL_HEADERS = ("request-id", "user-id", "timestamp", "signature")


@dataclass(frozen=True)
class Verified:
    """A callback proven to be the provider's."""

    delivery: str
    provider_job_id: str


def verify_replicate_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> Verified:
    """Check a Replicate webhook with the account's signing secret."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        prediction = Webhook(secret).verify(body, lowered)
    except (WebhookVerificationError, ValueError) as exc:
        raise SignatureError(f"not signed with the route's secret: {exc}") from None
    delivery = f"{lowered['webhook-id']}.{lowered['webhook-timestamp']}"
    prediction_id = prediction.get("id") if isinstance(prediction, dict) else None
    return Verified(delivery, prediction_id if isinstance(prediction_id, str) else "")


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
    """The request id of a verified webhook; raise ``SignatureError`` if it does not verify."""
    request_id, message, signature = _fal_signed(headers, body, now, tolerance_s)
    if not _verifies(jwks, signature, message):
        raise SignatureError("no key of the JWKS verifies the signature")
    return request_id


class KeySets:
    """fal key sets by URL: fetched on first use, again when no cached key verifies."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.sets: dict[str, tuple[float, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def verify_fal(self, url: str, headers: Mapping[str, str], body: bytes) -> Verified:
        """Check a fal webhook against the key set at url."""
        request_id, message, signature = _fal_signed(headers, body, None, TOLERANCE_S)
        fetched_at, jwks = self.sets.get(url) or (0.0, None)
        if jwks is not None and _verifies(jwks, signature, message):
            return _fal_verified(headers, request_id)
        may_refresh = jwks is None or time.monotonic() - fetched_at >= REFRESH_MIN_S
        if may_refresh and _verifies(self._fetch(url), signature, message):
            return _fal_verified(headers, request_id)
        raise SignatureError("no key of the JWKS verifies the signature")

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            jwks = fetch_jwks(self.client, url)
        except (httpx.HTTPError, ValueError) as exc:
            raise SignatureError(f"could not fetch the key set: {type(exc).__name__}") from None
        with self.lock:
            self.sets[url] = (time.monotonic(), jwks)
        return jwks


def _fal_verified(headers: Mapping[str, str], request_id: str) -> Verified:
    timestamp = {k.lower(): v for k, v in headers.items()}["x-fal-webhook-timestamp"]
    return Verified(f"{request_id}.{timestamp.strip()}", request_id)


def _fal_signed(
    headers: Mapping[str, str], body: bytes, now: float | None, tolerance_s: float
) -> tuple[str, bytes, bytes]:
    """The request id, signed message and signature of a fal webhook with a fresh timestamp."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(f"x-fal-webhook-{name}", "").strip() for name in FAL_HEADERS]
    if not all(values):
        raise SignatureError("missing X-Fal-Webhook-* headers")
    request_id, user_id, timestamp, signature_hex = values
    try:
        sent_at = int(timestamp)
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise SignatureError("malformed timestamp or signature") from None
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        raise SignatureError(f"timestamp {sent_at} is outside the {tolerance_s:.0f}s tolerance")
    digest = hashlib.sha256(body).hexdigest()
    return request_id, "\n".join([request_id, user_id, timestamp, digest]).encode(), signature


def _verifies(jwks: Mapping[str, Any], signature: bytes, message: bytes) -> bool:
    for key in _public_keys(jwks):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


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
