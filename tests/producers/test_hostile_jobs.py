"""Hostile input on /v1/jobs: every class is a 4xx naming the field, and changes nothing."""

import base64
import json

import pytest

from tests.producers.hostile import BAD_TEXT, Ledger, nested, post, refused, send

CHAT = {
    "model": "openai/gpt-4o-mini",
    "input": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
}


def with_input(**changes: object) -> dict[str, object]:
    return {**CHAT, "input": {**CHAT["input"], **changes}}  # type: ignore[dict-item]


def forged(moment: object, row_id: object) -> str:
    raw = json.dumps([moment, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda bad: with_input(messages=[{"role": "user", "content": f"hi{bad}"}]),
         "input.messages.0.content"),
        (lambda bad: {**CHAT, "metadata": {"note": f"a{bad}b"}}, "metadata.note"),
        (lambda bad: {**CHAT, "metadata": {f"k{bad}": "v"}}, "metadata"),
        (lambda bad: {**CHAT, "model": f"openai/gpt-4o-mini{bad}"}, "model"),
        (lambda bad: with_input(user=f"u{bad}"), "input.user"),
    ],
)  # fmt: skip
def test_text_that_cannot_be_stored_or_sent_is_422(client, auth, ledger: Ledger, bad, make, field):
    before = ledger.snapshot()

    refused(post(client, "/v1/jobs", make(bad), auth), 422, field)
    refused(
        post(client, "/v1/jobs/batch", {"jobs": [CHAT, make(bad)]}, auth), 422, f"jobs.1.{field}"
    )

    assert ledger.snapshot() == before
    assert client.get("/v1/jobs", headers=auth).status_code == 200


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_an_idempotency_key_that_cannot_be_stored_is_422(client, auth, ledger: Ledger, bad):
    before = ledger.snapshot()
    item = {**CHAT, "idempotency_key": f"k{bad}"}

    refused(post(client, "/v1/jobs/batch", {"jobs": [item]}, auth), 422, "jobs.0.idempotency_key")
    if bad == "\x00":  # a header holds bytes: a surrogate cannot even be sent in one
        headers = {**auth, "Idempotency-Key": f"k{bad}"}
        refused(post(client, "/v1/jobs", CHAT, headers), 422, "idempotency-key")
    assert ledger.snapshot() == before


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_json_does_not_have_are_422(client, auth, ledger: Ledger, number) -> None:
    before = ledger.snapshot()
    text = json.dumps({**CHAT, "metadata": {"score": 1.5}}).replace("1.5", number)
    sent = json.dumps(with_input(temperature=0.5)).replace("0.5", number)

    refused(send(client, "POST", "/v1/jobs", text, auth), 422, "body")
    refused(send(client, "POST", "/v1/jobs", sent, auth), 422, "body")
    assert ledger.snapshot() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_tokens": 10**30}, "input.max_tokens"),
        ({"max_tokens": 1_000_001}, "input.max_tokens"),
        ({"max_completion_tokens": 2**63}, "input.max_completion_tokens"),
        ({"n": 10**6}, "input.n"),
        ({"seed": 2**64}, "input.seed"),
    ],
)
def test_counts_past_their_bound_are_422(client, auth, ledger: Ledger, changes, field) -> None:
    before = ledger.snapshot()

    refused(post(client, "/v1/jobs", with_input(**changes), auth), 422, field)
    assert ledger.snapshot() == before


def test_anthropic_token_counts_are_bounded_too(client, auth, ledger: Ledger) -> None:
    before = ledger.snapshot()
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "input": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**20},
    }

    refused(post(client, "/v1/jobs", body, auth), 422, "input.max_tokens")
    body["input"] |= {"max_tokens": 16, "max_completion_tokens": 2**62, "n": 2**40}
    error = refused(post(client, "/v1/jobs", body, auth), 422, "input.n")
    assert "input.max_completion_tokens" in [e["field"] for e in error["errors"]]
    assert ledger.snapshot() == before


def test_durations_and_deadlines_past_their_bound_are_422(client, auth, ledger: Ledger) -> None:
    before = ledger.snapshot()

    refused(post(client, "/v1/jobs", {**CHAT, "deadline_s": 10**20}, auth), 422, "deadline_s")
    refused(post(client, "/v1/jobs", {**CHAT, "deadline_s": 8 * 86_400}, auth), 422, "deadline_s")
    assert ledger.snapshot() == before


@pytest.mark.parametrize("depth", [33, 300, 50_000])
def test_deep_nesting_is_422(client, auth, ledger: Ledger, depth: int) -> None:
    before = ledger.snapshot()
    body = with_input(extra=nested(depth)) if depth < 1000 else None
    text = json.dumps(body) if body else '{"input": ' + "[" * depth + "]" * depth + "}"

    response = send(client, "POST", "/v1/jobs", text, auth)

    refused(response, 422, "input.extra" if body else "body", prefix=True)
    assert "32 levels" in response.json()["error"]["message"] or depth > 1000
    assert ledger.snapshot() == before


@pytest.mark.parametrize("path", ["/v1/jobs/job_{}", "/v1/jobs/job_{}/cancel"])
def test_a_path_id_that_cannot_be_stored_is_404(client, auth, ledger: Ledger, path) -> None:
    before = ledger.snapshot()
    method = "POST" if path.endswith("cancel") else "GET"

    response = client.request(method, path.format("%00x"), headers=auth)

    refused(response, 404, "job_id")
    assert response.json()["error"]["type"] == "not_found"
    assert ledger.snapshot() == before


@pytest.mark.parametrize("name", ["cursor", "status", "limit"])
def test_a_query_parameter_with_nul_is_422(client, auth, ledger: Ledger, name) -> None:
    before = ledger.snapshot()

    refused(client.get("/v1/jobs", params={name: "a\x00b"}, headers=auth), 422, name)
    assert ledger.snapshot() == before


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-a-cursor!", id="garbage"),
        pytest.param(forged("0001-01-01T00:00:00+14:00", "job_x"), id="year-1"),
        pytest.param(forged("9999-12-31T23:59:59-14:00", "job_x"), id="year-9999"),
        pytest.param(forged("2026-01-01T00:00:00+00:00", "job_\x00"), id="nul-id"),
        pytest.param(forged("2026-01-01T00:00:00+00:00", 7), id="number-id"),
        pytest.param(forged({"a": 1}, ["b"]), id="objects"),
        pytest.param(base64.urlsafe_b64encode(b"[" * 150 + b"]" * 150).decode(), id="deep"),
        pytest.param("\u00e9t\u00e9", id="non-ascii"),
    ],
)
def test_a_forged_cursor_is_422(client, auth, ledger: Ledger, cursor: str) -> None:
    post(client, "/v1/jobs", CHAT, auth)
    before = ledger.snapshot()

    refused(client.get("/v1/jobs", params={"cursor": cursor}, headers=auth), 422, "cursor")
    assert ledger.snapshot() == before
