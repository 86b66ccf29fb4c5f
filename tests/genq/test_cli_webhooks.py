"""``genq webhooks …`` on the test's store: the operator's view, resend, recover, enable
(audited), and ``verify`` on requests the sample receiver captured."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.conftest import Hooks
from tests.store.test_dlq import audit_entries, genq
from tests.workers.test_webhooks import add_endpoint, finished_delivery


def captured_delivery(client, auth, hooks: Hooks, tmp_path: Path) -> tuple[str, Path]:
    """An endpoint's secret and the raw HTTP request of a real delivery to it."""
    name = hooks.new()
    endpoint = add_endpoint(client, auth, hooks.url(name))
    hooks.configure(name, [endpoint["secret"]], capture_dir=str(tmp_path))
    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth)
    hooks.wait(name, "verified", 1)
    (capture,) = tmp_path.glob("*.http")
    return endpoint["secret"], capture


def test_verify_accepts_a_genuine_delivery(client, auth, worker, hooks, tmp_path) -> None:
    secret, capture = captured_delivery(client, auth, hooks, tmp_path)

    result = genq("webhooks", "verify", "--secret", secret, str(capture))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("verified: msg_")
    assert "webhook.test" in result.stdout


def test_verify_refuses_a_wrong_secret_or_a_tampered_body(
    client, auth, worker, hooks, tmp_path
) -> None:
    secret, capture = captured_delivery(client, auth, hooks, tmp_path)
    tampered = tmp_path / "tampered.req"
    tampered.write_bytes(capture.read_bytes().replace(b"webhook.test", b"webhook.tset"))
    other = "whsec_" + "A" * 43 + "="

    wrong = genq("webhooks", "verify", "--secret", other, str(capture))
    changed = genq("webhooks", "verify", "--secret", secret, str(tampered))

    assert (wrong.exit_code, changed.exit_code) == (1, 1)
    assert "not verified: No matching signature found" in wrong.output
    assert "not verified" in changed.output


def test_verify_an_old_capture_needs_ignore_age(tmp_path) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{}}'
    sent_at = datetime.now(UTC) - timedelta(hours=1)
    signature = Webhook(secret).sign("msg_old", sent_at, body)
    capture = tmp_path / "old.http"
    capture.write_bytes(
        "POST /hook HTTP/1.1\r\n"
        "webhook-id: msg_old\r\n"
        f"webhook-timestamp: {int(sent_at.timestamp())}\r\n"
        f"webhook-signature: {signature}\r\n\r\n{body}".encode()
    )

    strict = genq("webhooks", "verify", "--secret", secret, str(capture))
    lenient = genq("webhooks", "verify", "--secret", secret, "--ignore-age", str(capture))

    assert strict.exit_code == 1
    assert "Message timestamp too old" in strict.output
    assert lenient.exit_code == 0, lenient.output
    assert lenient.stdout == "verified: msg_old job.succeeded\n"


@pytest.mark.parametrize(
    ("secret", "request_text", "says"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "no blank line", "expected a raw HTTP request"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "POST / HTTP/1.1\r\n\r\n{}", "missing header"),
        ("whsec_", "POST / HTTP/1.1\r\n\r\n{}", "--secret is not a webhook secret"),
    ],
)
def test_verify_bad_input_exits_2(tmp_path, secret, request_text, says) -> None:
    capture = tmp_path / "bad.http"
    capture.write_text(request_text)

    result = genq("webhooks", "verify", "--secret", secret, str(capture))

    assert result.exit_code == 2
    assert says in result.output


def test_an_operator_lists_resends_and_recovers_with_an_audit_trail(
    cli_env, client, auth, worker, hooks
) -> None:
    name = hooks.new(default={"status": 500})
    endpoint = add_endpoint(client, auth, hooks.url(name))
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    assert finished_delivery(client, auth, sent["id"])["status"] == "failed"
    hooks.configure(name, [])

    listed = genq("webhooks", "deliveries", "--endpoint", endpoint["id"], "--status", "failed")
    shown = genq("webhooks", "show", sent["id"])
    recovered = genq("webhooks", "recover", endpoint["id"], "--since", "1h", "--actor", "bob")
    delivered = finished_delivery(client, auth, sent["id"])
    resent = genq("webhooks", "resend", sent["id"], "--actor", "carol")

    assert listed.exit_code == 0 and sent["id"] in listed.stdout
    assert shown.exit_code == 0 and "the receiver answered 500" in shown.stdout
    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout.splitlines() == ["resent 1 failed deliveries", f"  {sent['id']}"]
    assert delivered["status"] == "succeeded"
    assert resent.exit_code == 0 and sent["webhook_id"] in resent.stdout
    entries = [(e.actor, e.action, e.targets) for e in audit_entries(cli_env)]
    assert entries == [
        ("bob", "webhooks.recover", [sent["id"]]),
        ("carol", "webhooks.resend", [sent["id"]]),
    ]


def test_an_operator_sees_and_reenables_a_disabled_endpoint(
    cli_env, client, auth, worker, hooks
) -> None:
    name = hooks.new(default={"status": 410})
    endpoint = add_endpoint(client, auth, hooks.url(name))
    sent = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=auth).json()
    finished_delivery(client, auth, sent["id"])

    before = genq("webhooks", "endpoints")
    enabled = genq("webhooks", "enable", endpoint["id"])

    assert "the receiver answered 410 Gone" in before.stdout
    assert enabled.exit_code == 0, enabled.output
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (True, None)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["show", "whd_missing"], "no webhook delivery 'whd_missing'"),
        (["resend", "whd_missing"], "no webhook delivery 'whd_missing'"),
        (["recover", "whe_missing", "--since", "1h"], "no webhook endpoint 'whe_missing'"),
        (["recover", "whe_x", "--since", "yesterday"], "--since/--until"),
        (["recover", "whe_x", "--since", "1h", "--until", "2h"], "--until must come after"),
        (["enable", "whe_missing"], "no webhook endpoint 'whe_missing'"),
    ],
)
def test_operator_bad_input_exits_2(cli_env, args, says) -> None:
    result = genq("webhooks", *args)

    assert result.exit_code == 2
    assert says in result.output
