"""Signing in with an admin key, and out."""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from producers.app_state import producer_of
from producers.console.render import page
from producers.console.session import SIGN_IN, Posted, sessions_of
from store.admin_keys import identify_admin

router = APIRouter()


@router.get(SIGN_IN, response_class=HTMLResponse)
def sign_in_form(request: Request) -> HTMLResponse:
    """The sign-in page."""
    return page(request, "sign_in.html", None, error=None)


@router.post(SIGN_IN)
def sign_in(request: Request, key: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Check the admin key and start a session naming it; the key itself is not kept.

    A sign-in posted from another site is refused, so no page can sign a browser in under
    a key of its own choosing (login CSRF): browsers say where a POST comes from in
    ``Sec-Fetch-Site`` and ``Origin``."""
    if _cross_site(request):
        response = page(request, "sign_in.html", None, error="Sign in from this page.")
        response.status_code = 403
        return response
    with producer_of(request).sessions() as session:
        identity = identify_admin(session, key.strip())
    if identity is None:
        response = page(request, "sign_in.html", None, error="That is not a live admin key.")
        response.status_code = 401
        return response
    response = RedirectResponse("/console", status_code=303)
    sessions_of(request).start(request, response, identity.name)
    return response


@router.post("/console/sign-out")
def sign_out(request: Request, user: Posted) -> Response:
    """End the session."""
    response = RedirectResponse(SIGN_IN, status_code=303)
    sessions_of(request).end(response)
    return response


def _cross_site(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.url.netloc
