"""Console sessions: a signed cookie naming the admin key and a per-session CSRF token.

The cookie is signed with itsdangerous (timestamped, so it expires after
``console_session_s``), HttpOnly, SameSite=Strict, and Secure when the request came over
https. Each request re-reads the key: revoking it ends its sessions at once, and a role
change applies on the next click. Every POST must carry the session's CSRF token, as the
form field ``csrf`` or the ``X-CSRF-Token`` header (htmx sends it from ``hx-headers``).
"""

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from producers.app_state import producer_of
from store.admin_keys import AdminIdentity, live_identity

COOKIE = "genq_console"
SIGN_IN = "/console/sign-in"


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page."""


class Refused(Exception):
    """A signed-in user may not do this (a viewer acting, or a form without its token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Sessions:
    """Makes and reads session cookies for one API process."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="genq.console.session")
        self.max_age_s = max_age_s

    def start(self, request: Request, response: Response, name: str) -> None:
        """Sign ``name`` in: a fresh cookie with a fresh CSRF token."""
        value = self.serializer.dumps({"name": name, "csrf": secrets.token_urlsafe(32)})
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.max_age_s,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def end(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")

    def read(self, request: Request) -> dict[str, Any] | None:
        """The session the cookie holds, or None if it is missing, forged or expired."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            data = self.serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None


class User:
    """The signed-in admin key, its role and its session's CSRF token."""

    def __init__(self, identity: AdminIdentity, csrf: str) -> None:
        self.identity = identity
        self.csrf = csrf

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def can_act(self) -> bool:
        return self.identity.can_act


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


def current_user(request: Request) -> User:
    """The signed-in user; else ``SignInRequired``."""
    data = sessions_of(request).read(request)
    if data is None:
        raise SignInRequired
    with producer_of(request).sessions() as session:
        identity = live_identity(session, str(data.get("name")))
    if identity is None:
        raise SignInRequired
    return User(identity, str(data.get("csrf")))


async def _posted_token(request: Request) -> str:
    if token := request.headers.get("x-csrf-token"):
        return token
    form = await request.form()
    value = form.get("csrf")
    return value if isinstance(value, str) else ""


async def posted(user: Annotated[User, Depends(current_user)], request: Request) -> User:
    """The signed-in user, if the request carries their session's CSRF token."""
    if not secrets.compare_digest(await _posted_token(request), user.csrf):
        raise Refused("This form has expired or did not come from the console; reload the page.")
    return user


def operator(user: Annotated[User, Depends(posted)]) -> User:
    """The signed-in user, if they may act (and the request carries their CSRF token)."""
    if not user.can_act:
        raise Refused(f"{user.name} is a viewer: viewers see everything and change nothing.")
    return user


Viewer = Annotated[User, Depends(current_user)]
Posted = Annotated[User, Depends(posted)]
Operator = Annotated[User, Depends(operator)]
