"""Checking a captured delivery the way a customer's receiver would, for ``genq webhooks
verify``: parse the raw HTTP request and verify it with the stock library."""

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from schema.errors import RequestError

__all__ = ["CapturedRequest", "MalformedCaptureError", "WebhookVerificationError", "verify"]


class MalformedCaptureError(RequestError, ValueError):
    """The input is not an HTTP request with Standard Webhooks headers."""


@dataclass(frozen=True)
class CapturedRequest:
    headers: dict[str, str]
    body: bytes

    @classmethod
    def parse(cls, raw: bytes) -> "CapturedRequest":
        """Read ``POST /path HTTP/1.1``, header lines, a blank line and the body."""
        head, separator, body = raw.partition(b"\r\n\r\n")
        if not separator:
            head, separator, body = raw.partition(b"\n\n")
        lines = head.decode("latin-1").splitlines()
        if not separator or not lines or " " not in lines[0]:
            raise MalformedCaptureError(
                "expected a raw HTTP request: a request line, headers, a blank line, the body"
            )
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise MalformedCaptureError(f"not a header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        missing = {"webhook-id", "webhook-timestamp", "webhook-signature"} - set(headers)
        if missing:
            raise MalformedCaptureError(f"missing header(s): {', '.join(sorted(missing))}")
        return cls(headers, body)


def verify(secret: str, request: CapturedRequest, *, check_age: bool = True) -> Any:
    """The parsed event if a signature matches ``secret``; else raise
    ``WebhookVerificationError``. ``check_age=False`` accepts an old capture, whose
    timestamp the library would refuse as a possible replay."""
    webhook = Webhook(secret)
    if check_age:
        return webhook.verify(request.body, request.headers)
    try:
        moment = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    except (ValueError, OverflowError) as exc:
        raise WebhookVerificationError("Invalid Signature Headers") from exc
    body = request.body.decode()
    expected = webhook.sign(request.headers["webhook-id"], moment, body)
    given = request.headers["webhook-signature"].split(" ")
    if not any(hmac.compare_digest(expected, signature) for signature in given):
        raise WebhookVerificationError("No matching signature found")
    return json.loads(body)
