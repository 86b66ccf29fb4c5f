"""Hostile input on the admin API: filters, ids, times, cursors and bodies."""

import json

import pytest

from tests.producers.hostile import BAD_TEXT, FAR_DATES, Ledger, nested, post, refused, send

LETTERS = "/admin/dead-letters"


@pytest.mark.parametrize(
    "name", ["route", "tenant", "error_class", "source", "since", "status", "cursor"]
)
def test_a_query_parameter_with_nul_is_422(client, admin, ledger: Ledger, name: str) -> None:
    before = ledger.snapshot()

    refused(client.get(LETTERS, params={name: "x\x00"}, headers=admin), 422, name)
    assert ledger.snapshot() == before


@pytest.mark.parametrize("since", [*FAR_DATES, pytest.param("999999w", id="a-million-weeks")])
def test_since_out_of_range_is_422(client, admin, ledger: Ledger, since: str) -> None:
    before = ledger.snapshot()

    refused(client.get(LETTERS, params={"since": since}, headers=admin), 422, "since")
    refused(client.get(f"{LETTERS}/stats", params={"since": since}, headers=admin), 422, "since")
    for action in ("requeue", "purge"):
        body = {"filter": {"since": since}, "dry_run": True}
        refused(post(client, f"{LETTERS}/{action}", body, admin), 422, "filter.since")
    assert ledger.snapshot() == before


@pytest.mark.parametrize("cursor", ["forged", "W1siOTk5OS0xMi0zMVQyMzo1OTo1OS0xNDowMCIsICJ4Il1d"])
def test_a_forged_cursor_is_422(client, admin, cursor: str) -> None:
    refused(client.get(LETTERS, params={"cursor": cursor}, headers=admin), 422, "cursor")


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("action", ["requeue", "purge"])
def test_text_that_cannot_be_stored_is_422(client, admin, ledger: Ledger, bad, action) -> None:
    before = ledger.snapshot()
    url = f"{LETTERS}/{action}"

    refused(post(client, url, {"ids": [f"dlq_{bad}"]}, admin), 422, "ids.0")
    body = {"filter": {"route": f"openai{bad}"}, "confirm": True}
    refused(post(client, url, body, admin), 422, "filter.route")
    assert ledger.snapshot() == before


@pytest.mark.parametrize("number", ["NaN", "Infinity"])
def test_numbers_json_does_not_have_are_422(client, admin, ledger: Ledger, number) -> None:
    before = ledger.snapshot()
    text = json.dumps({"ids": ["dlq_1"], "dry_run": 0.5}).replace("0.5", number)

    refused(send(client, "POST", f"{LETTERS}/purge", text, admin), 422, "body")
    assert ledger.snapshot() == before


def test_deep_nesting_is_422(client, admin, ledger: Ledger) -> None:
    before = ledger.snapshot()

    response = post(client, f"{LETTERS}/requeue", {"ids": nested(300)}, admin)

    refused(response, 422, "ids", prefix=True)
    assert ledger.snapshot() == before


def test_a_letter_id_that_cannot_be_stored_is_404(client, admin, ledger: Ledger) -> None:
    before = ledger.snapshot()

    refused(client.get(f"{LETTERS}/dlq_%00", headers=admin), 404, "letter_id")
    assert ledger.snapshot() == before


@pytest.mark.parametrize("limit", ["0", "501", str(2**64), "x\x00"])
def test_limits_out_of_range_are_422(client, admin, limit: str) -> None:
    refused(client.get("/admin/audit", params={"limit": limit}, headers=admin), 422, "limit")
