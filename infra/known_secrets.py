"""The secrets a process knows from its configuration, registered for redaction at start-up:
every route's provider key and webhook signing secret (read from the variables its
``api_key_env`` and ``webhook_secret_env`` name) and every
secret setting. Tenant and admin keys and webhook secrets are registered by the store as
it handles them."""

from urllib.parse import urlsplit

from pydantic import SecretStr

from infra.scrub import register_secret
from schema.routes import Routes
from schema.settings import Settings


def register_configured(settings: Settings, routes: Routes) -> None:
    """Register the provider keys and webhook secrets of ``routes`` and the secret values
    of ``settings``."""
    for route in routes.by_name.values():
        for secret in (route.api_key(), route.webhook_secret()):
            if secret is not None:
                register_secret(secret.get_secret_value())
    for _, value in settings:
        if isinstance(value, SecretStr):
            register_secret(secret_part(value.get_secret_value()))


def secret_part(value: str) -> str | None:
    """What is secret in a setting: a URL's password (its host, user and path are not, and
    redacting them everywhere would hide what a message is about), else the whole value."""
    if "://" not in value:
        return value
    try:
        return urlsplit(value).password
    except ValueError:
        return value
