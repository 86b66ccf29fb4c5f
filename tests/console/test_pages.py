"""Every console page in Chromium: shown as text whatever the data holds, never a secret,
change controls only for operators, and each page's screenshot saved under docs/console/."""

import time
from collections.abc import Callable

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.sync_api import Page, expect

from infra.route_control import paused
from producers import Producer
from tests.console.conftest import Live, sign_in
from tests.console.seed import HOSTILE, Seeded, seed

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


@pytest.fixture
def seeded(producer: Producer, engine, tenant, hooks, worker) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(producer, engine, tenant, hooks)


def pages(seeded: Seeded) -> dict[str, str]:
    return {
        "overview": "/console",
        "dead-letters": "/console/dead-letters",
        "dead-letter": f"/console/dead-letters/{seeded.letter_id}",
        "jobs": "/console/jobs",
        "job": f"/console/jobs/{seeded.job_id}",
        "routes": "/console/routes",
        "webhooks": "/console/webhooks",
        "tenants": "/console/tenants",
        "audit": "/console/audit",
    }


def assert_shown_as_text(page: Page) -> None:
    """The hostile text is on the page as text: no element came of it, no script ran."""
    assert page.locator("#injected").count() == 0
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => document.querySelectorAll('main script').length") == 0


def test_every_page_shows_hostile_data_as_text_and_no_secret(
    page: Page, live: Live, seeded: Seeded, shot: Callable[[Page, str], None]
) -> None:
    page.goto(f"{live.url}/console/sign-in")
    shot(page, "sign-in")
    sign_in(page, live.url, seeded.operator_key)
    for name, path in pages(seeded).items():
        page.goto(f"{live.url}{path}")
        assert_shown_as_text(page)
        html = page.content()
        for secret in seeded.secrets:
            assert secret not in html, f"{name} shows a secret"
        shot(page, name)

    for path, where in (
        (f"/console/jobs/{seeded.job_id}", ".job-metadata"),
        (f"/console/dead-letters/{seeded.letter_id}", "pre.error-message"),
        ("/console/webhooks", ".endpoint-description"),
    ):
        page.goto(f"{live.url}{path}")
        expect(page.locator(where).first).to_contain_text("<script>alert(")
        expect(page.locator(where).first).to_contain_text("bold</b>")
        assert_shown_as_text(page)
    page.goto(f"{live.url}/console/webhooks")
    page.locator("a[href^='/console/webhooks/deliveries/']").first.click()
    expect(page.get_by_role("heading", name="Attempt log")).to_be_visible()
    assert not any(secret in page.content() for secret in seeded.secrets)
    shot(page, "delivery")
    page.goto(f"{live.url}/console/tenants")
    page.get_by_role("link", name="acme").click()
    expect(page.get_by_role("heading", name="Usage by model, last 30 days")).to_be_visible()
    shot(page, "tenant")
    assert HOSTILE not in page.content()


def test_an_operator_pauses_a_route_and_the_audit_names_them(
    page: Page, live: Live, seeded: Seeded, producer: Producer, shot
) -> None:
    sign_in(page, live.url, seeded.operator_key)
    page.goto(f"{live.url}/console/routes")
    page.locator("#openai").get_by_role("button", name="Pause").click()
    expect(page.locator("#openai")).to_contain_text("paused by admin:oncall-op")
    assert paused(producer.redis, ["openai"])["openai"]["by"] == "admin:oncall-op"
    shot(page, "routes-paused")
    page.locator("#openai").get_by_role("button", name="Resume").click()
    expect(page.locator("#openai")).to_contain_text("running")

    page.goto(f"{live.url}/console/audit?action=route")
    expect(page.locator(".audit-entry")).to_have_count(2)
    expect(page.locator(".audit-entry .actor").first).to_have_text("admin:oncall-op")


def test_a_viewer_sees_no_change_controls_and_a_post_by_hand_is_refused(
    page: Page, live: Live, seeded: Seeded, producer: Producer, shot
) -> None:
    sign_in(page, live.url, seeded.viewer_key)
    for name, path in pages(seeded).items():
        page.goto(f"{live.url}{path}")
        acting = page.locator("main form[method=post], main [hx-post]")
        assert acting.count() == 0, f"{name} offers a viewer a change"
    page.goto(f"{live.url}/console/routes")
    shot(page, "routes-viewer")

    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{live.url}/console/routes/openai/pause", form={"csrf": token})
    assert answer.status == 403
    assert "is a viewer" in answer.text()
    assert paused(producer.redis, ["openai"]) == {}


def test_a_form_without_its_csrf_token_is_refused(
    page: Page, live: Live, seeded: Seeded, producer: Producer
) -> None:
    sign_in(page, live.url, seeded.operator_key)
    answer = page.request.post(f"{live.url}/console/routes/openai/pause", form={"x": "1"})
    assert answer.status == 403
    assert paused(producer.redis, ["openai"]) == {}


def test_an_expired_session_goes_back_to_sign_in(page: Page, live: Live, seeded: Seeded) -> None:
    sign_in(page, live.url, seeded.operator_key)
    sessions = live.app.state.console_sessions

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - sessions.max_age_s - 60

    stale = URLSafeTimedSerializer(
        sessions.serializer.secret_key, salt="genq.console.session", signer=LongAgo
    ).dumps({"name": "oncall-op", "csrf": "x"})
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "genq_console", "value": stale, "url": f"{live.url}/console"}]
    )

    page.goto(f"{live.url}/console/dead-letters")
    expect(page).to_have_url(f"{live.url}/console/sign-in")
