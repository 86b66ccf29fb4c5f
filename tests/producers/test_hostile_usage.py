"""Hostile input on /v1/usage: dates out of range and text that cannot be stored are 422."""

import pytest

from tests.producers.hostile import FAR_DATES, Ledger, refused


@pytest.mark.parametrize("when", FAR_DATES)
@pytest.mark.parametrize("name", ["from", "to"])
def test_dates_out_of_range_are_422(client, auth, ledger: Ledger, name: str, when: str) -> None:
    before = ledger.snapshot()

    refused(client.get("/v1/usage", params={name: when}, headers=auth), 422, name)
    assert ledger.snapshot() == before


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31", "1969-12-31T23:59:59Z"])
def test_naive_dates_out_of_range_are_422(client, auth, when: str) -> None:
    response = client.get("/v1/usage", params={"from": when, "group_by": "day"}, headers=auth)

    error = refused(response, 422, "from")
    assert "1970-01-01" in error["message"]


@pytest.mark.parametrize("name", ["from", "to", "group_by"])
def test_a_query_parameter_with_nul_is_422(client, auth, ledger: Ledger, name: str) -> None:
    before = ledger.snapshot()

    refused(client.get("/v1/usage", params={name: "2026-01-01\x00"}, headers=auth), 422, name)
    assert ledger.snapshot() == before


def test_a_whole_century_by_day_is_answered(client, auth) -> None:
    params = {"from": "1970-01-01T00:00:00Z", "to": "2999-12-31T00:00:00Z", "group_by": "day"}

    response = client.get("/v1/usage", params=params, headers=auth)

    assert response.status_code == 200
    assert response.json()["data"] == []


def test_a_nul_in_the_authorization_header_is_422(client, auth, ledger: Ledger) -> None:
    before = ledger.snapshot()
    headers = {"Authorization": auth["Authorization"] + "\x00"}

    refused(client.get("/v1/usage", headers=headers), 422, "authorization")
    assert ledger.snapshot() == before
