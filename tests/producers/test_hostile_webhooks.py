"""Hostile input on the /v1 webhook API: endpoints, secrets, deliveries and recover."""

import json

import pytest

from tests.producers.hostile import (
    BAD_TEXT,
    FAR_DATES,
    Ledger,
    nested,
    post,
    refused,
    send,
)

ENDPOINTS = "/v1/webhook-endpoints"


@pytest.fixture
def endpoint(client, auth, hooks) -> str:
    response = client.post(ENDPOINTS, json={"url": hooks.url(hooks.new())}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_a_description_that_cannot_be_stored_is_422(
    client, auth, hooks, endpoint, ledger: Ledger, bad
) -> None:
    before = ledger.snapshot()
    body = {"url": hooks.url(hooks.new()), "description": f"ours{bad}"}

    refused(post(client, ENDPOINTS, body, auth), 422, "description")
    response = send(
        client, "PATCH", f"{ENDPOINTS}/{endpoint}", json.dumps({"description": bad}), auth
    )
    refused(response, 422, "description")
    assert ledger.snapshot() == before
    assert client.get(f"{ENDPOINTS}/{endpoint}", headers=auth).json()["description"] == ""


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_numbers_json_does_not_have_are_422(client, auth, endpoint, ledger: Ledger, number):
    before = ledger.snapshot()
    text = json.dumps({"grace_s": 60}).replace("60", number)

    refused(send(client, "POST", f"{ENDPOINTS}/{endpoint}/rotate-secret", text, auth), 422, "body")
    refused(send(client, "POST", "/v1/webhook-secret/rotate", text, auth), 422, "body")
    assert ledger.snapshot() == before


def test_durations_past_their_bound_are_422(client, auth, endpoint, ledger: Ledger) -> None:
    before = ledger.snapshot()

    for grace_s in (10**30, 8 * 86_400):
        response = post(client, "/v1/webhook-secret/rotate", {"grace_s": grace_s}, auth)
        refused(response, 422, "grace_s")
    assert ledger.snapshot() == before


def test_deep_nesting_is_422(client, auth, hooks, ledger: Ledger) -> None:
    before = ledger.snapshot()
    body = {"url": hooks.url(hooks.new()), "event_types": nested(300)}

    response = post(client, ENDPOINTS, body, auth)

    refused(response, 422, "event_types", prefix=True)
    assert ledger.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{ENDPOINTS}/whe_%00"),
        ("PATCH", f"{ENDPOINTS}/whe_%00"),
        ("DELETE", f"{ENDPOINTS}/whe_%00"),
        ("POST", f"{ENDPOINTS}/whe_%00/rotate-secret"),
        ("POST", f"{ENDPOINTS}/whe_%00/test"),
        ("POST", f"{ENDPOINTS}/whe_%00/recover"),
        ("GET", f"{ENDPOINTS}/whe_%00/deliveries"),
        ("GET", "/v1/webhook-deliveries/whd_%00"),
        ("POST", "/v1/webhook-deliveries/whd_%00/resend"),
    ],
)
def test_a_path_id_that_cannot_be_stored_is_404(client, auth, ledger: Ledger, method, path):
    before = ledger.snapshot()
    body = {"description": "x"} if method == "PATCH" else {"since": "2026-01-01T00:00:00Z"}

    response = send(client, method, path, json.dumps(body), auth)

    field = "delivery_id" if "deliveries/whd" in path else "endpoint_id"
    refused(response, 404, field)
    assert ledger.snapshot() == before


@pytest.mark.parametrize("name", ["endpoint_id", "job_id", "cursor", "status"])
def test_a_query_parameter_with_nul_is_422(client, auth, ledger: Ledger, name: str) -> None:
    before = ledger.snapshot()

    response = client.get("/v1/webhook-deliveries", params={name: "x\x00"}, headers=auth)

    refused(response, 422, name)
    assert ledger.snapshot() == before


@pytest.mark.parametrize("cursor", ["forged", "W1siMDAwMS0wMS0wMVQwMDowMDowMCIsICJ4Il1d"])
def test_a_forged_cursor_is_422(client, auth, endpoint, cursor: str) -> None:
    for path in ("/v1/webhook-deliveries", f"{ENDPOINTS}/{endpoint}/deliveries"):
        refused(client.get(path, params={"cursor": cursor}, headers=auth), 422, "cursor")


@pytest.mark.parametrize("when", FAR_DATES)
@pytest.mark.parametrize("name", ["since", "until"])
def test_a_recover_window_out_of_range_is_422(
    client, auth, endpoint, ledger: Ledger, name: str, when: str
) -> None:
    before = ledger.snapshot()
    body = {"since": "2026-01-01T00:00:00Z", name: when}

    refused(post(client, f"{ENDPOINTS}/{endpoint}/recover", body, auth), 422, name)
    assert ledger.snapshot() == before
