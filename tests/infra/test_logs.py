"""Logs: one JSON object per line with the job's fields, a readable line in a terminal, and
no secret in either, whatever the message or the exception quotes."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from infra.logs import ContextFilter, add_log_context, configure_logging, formatter, log_context

# kind: (text as it might appear, the part that must never be written)
REAL_LOOKING = {
    "openai": ("sk-proj-4fJ9kQ2mZx7LrT1vYb8NcW3eHs6uPa0D",) * 2,
    "anthropic": ("sk-ant-api03-Zq8Lm2Xv9Rt4Yb6Nc1We3Hs7Pa0Dk5Jf-AbCd",) * 2,
    "replicate": ("r8_Kq2Lm8Xv4Rt9Yb1Nc6We3Hs7Pa0Dk5Jf",) * 2,
    "tenant": ("gq_3mZx7LrT1vYb8NcW3eHs6uPa0D4fJ9kQ2",) * 2,
    "webhook": ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",) * 2,
    "bearer": ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGciOiJIUzI1NiJ9"),
    "basic": ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    "password": ("postgresql://genq:hunter2-secret@db:5432/genq", "hunter2-secret"),
    "query": ("https://hooks.example.com/in?token=Zq8Lm2Xv9Rt4&order=1", "Zq8Lm2Xv9Rt4"),
}


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("genq.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_the_jobs_fields(captured) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter("json"))

    job = {"job_id": "job_1", "tenant_id": "ten_1", "route": "openai", "model": "gpt-4o-mini"}
    with log_context(**job), log_context(attempt=2):
        add_log_context(provider_request_id="req_9")
        logger.info("called %s", "the provider")
    logger.info("no job here")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "called the provider"
    assert (first["level"], first["logger"]) == ("INFO", "genq.test.logs")
    assert {k: first[k] for k in ("job_id", "tenant_id", "route", "model", "attempt")} == {
        "job_id": "job_1",
        "tenant_id": "ten_1",
        "route": "openai",
        "model": "gpt-4o-mini",
        "attempt": 2,
    }
    assert first["provider_request_id"] == "req_9"
    assert "job_id" not in second and "context" not in second


def test_console_lines_are_readable(captured) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter("console"))

    with log_context(job_id="job_1", route="openai"):
        logger.warning("slow answer")

    assert (
        stream.getvalue()
        .rstrip()
        .endswith("WARNING genq.test.logs slow answer [job_id=job_1 route=openai]")
    )


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("kind", sorted(REAL_LOOKING))
def test_secrets_are_redacted_from_messages_and_tracebacks(captured, log_format, kind) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter(log_format))
    text, secret = REAL_LOOKING[kind]

    logger.info("provider answered 401 for %s", text)
    logger.info("calling out", extra={"target": text})
    try:
        raise RuntimeError(f"connect failed: {text}")
    except RuntimeError:
        logger.exception("call broke")

    written = stream.getvalue()
    assert written.count("[redacted]") >= 2
    assert "RuntimeError" in written
    assert secret not in written


def test_a_malformed_log_call_does_not_fail_the_caller(captured) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter("console"))

    logger.warning("retrying %s in %d s", "x")

    assert "retrying %s in %d s ('x',)" in stream.getvalue()


def test_fields_learned_outside_a_block_do_not_stick_to_the_thread(captured) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter("console"))

    assert not add_log_context(job_id="job_stray")
    logger.info("after")

    assert "job_stray" not in stream.getvalue()


@pytest.mark.parametrize(("level", "logged"), [("INFO", False), ("DEBUG", True)])
def test_a_line_per_http_request_is_logged_only_at_debug(level, logged) -> None:
    root, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    saved = root.level, httpx_logger.level, list(root.handlers)
    try:
        configure_logging("json", level)
        assert httpx_logger.isEnabledFor(logging.INFO) is logged
        assert httpx_logger.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(saved[0])
        httpx_logger.setLevel(saved[1])
        root.handlers[:] = saved[2]
