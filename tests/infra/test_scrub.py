"""Scrubbing by value: a registered secret is redacted whatever its shape; short values are
never registered; a process registers its configured provider keys and secret settings."""

import secrets

from pydantic import SecretStr

from infra import scrub as scrubbing
from infra.known_secrets import register_configured, secret_part
from infra.scrub import REDACTED, register_secret, scrub, scrub_known, scrub_value
from schema.routes import Route, Routes
from schema.settings import Settings


def odd_key() -> str:
    """A provider key in a format no shape pattern knows, fresh for each test."""
    return f"zz-9f3a{secrets.token_hex(12)}"


def test_a_registered_value_is_redacted_whatever_its_shape() -> None:
    key = odd_key()
    said = f"HTTP 401: Incorrect API key provided: {key}. Check it."
    assert scrub(said) == said

    register_secret(key)

    assert scrub(said) == f"HTTP 401: Incorrect API key provided: {REDACTED}. Check it."
    assert scrub_value({"errors": [said]}) == {"errors": [scrub(said)]}


def test_short_and_blank_values_are_not_registered() -> None:
    register_secret("hunter2", "", "   ", None)

    assert scrub("hunter2 is a word, and so is this") == "hunter2 is a word, and so is this"


def test_scrub_known_redacts_values_but_leaves_shapes() -> None:
    key = odd_key()
    register_secret(key)
    output = f"Use 'Bearer token' auth; the key was {key}"

    assert scrub_known(output) == f"Use 'Bearer token' auth; the key was {REDACTED}"


def test_a_longer_value_is_redacted_whole_before_a_shorter_one_inside_it() -> None:
    short = odd_key()
    long = f"{short}-and-more"
    register_secret(short, long)

    assert scrub(f"<{long}>") == f"<{REDACTED}>"


def test_many_registered_values_are_found_by_their_heads(monkeypatch) -> None:
    monkeypatch.setattr(scrubbing, "_known", scrubbing._known)
    many = [odd_key() for _ in range(scrubbing.DIRECT_SEARCH_MAX * 2)]
    register_secret(*many)

    assert scrub(f"a {many[0]} b {many[-1]} c") == f"a {REDACTED} b {REDACTED} c"
    assert scrub("nothing secret here at all") == "nothing secret here at all"


def test_a_process_registers_its_provider_keys_and_secret_settings(monkeypatch) -> None:
    provider_key, db_password, dsn = odd_key(), odd_key(), odd_key()
    monkeypatch.setenv("GENQ_TEST_ODD_KEY", provider_key)
    route = Route(
        name="odd",
        protocol="openai-chat",
        base_url="http://127.0.0.1:1/v1",
        api_key_env="GENQ_TEST_ODD_KEY",
        models=["m"],
    )
    settings = Settings(
        database_url=SecretStr(f"postgresql://genq:{db_password}@db.internal:5432/genq"),
        sentry_dsn=SecretStr(dsn),
        _env_file=None,
    )

    register_configured(settings, Routes({"odd": route}))

    said = f"{provider_key} {db_password} {dsn} db.internal:5432/genq"
    assert scrub_known(said) == f"{REDACTED} {REDACTED} {REDACTED} db.internal:5432/genq"


def test_only_a_urls_password_is_secret() -> None:
    assert secret_part("redis://127.0.0.1:6379/13") is None
    assert secret_part("amqp://guest:s3cr3t-pass@mq:5672/%2F") == "s3cr3t-pass"
    assert secret_part("plain-secret-value") == "plain-secret-value"
