"""Standard Webhooks v1 signatures, made with the reference library.

During a rotation a delivery carries one signature per live secret, space-separated,
so a receiver holding either secret verifies it.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>``
    for each secret."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(secret).sign(msg_id, moment, body) for secret in secrets)


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: str
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }
