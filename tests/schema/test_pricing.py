"""Prices, estimates and input translation: the arithmetic behind budgets and fallbacks."""

import pytest

from schema.pricing import cost_micros, estimate_input_tokens, max_cost_micros
from schema.routes import ModelSpec, Protocol, Route, Routes
from workers.providers.translate import translate

MINI = ModelSpec(input_per_mtok=0.15, output_per_mtok=0.60, max_output_tokens=1000)


def test_token_costs_are_exact_micro_dollars() -> None:
    assert cost_micros(MINI, {"input_tokens": 1_000_000, "output_tokens": 1_000_000}) == 750_000
    assert cost_micros(MINI, {"input_tokens": 1}) == 1  # rounds up, never down
    assert cost_micros(ModelSpec(per_image=0.04), {"images": 3}) == 120_000
    assert cost_micros(ModelSpec(per_video_second=0.1), {"video_seconds": 8}) == 800_000


def test_estimate_errs_high_against_four_characters_per_token() -> None:
    text = "word " * 400
    estimate = estimate_input_tokens(
        Protocol.OPENAI_CHAT, {"messages": [{"role": "user", "content": text}]}
    )
    assert estimate > len(text) / 4


def test_max_cost_uses_max_tokens_or_the_models_default() -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]}
    with_max = max_cost_micros(Protocol.OPENAI_CHAT, MINI, {**base, "max_tokens": 10})
    default = max_cost_micros(Protocol.OPENAI_CHAT, MINI, base)
    assert with_max < default
    assert default >= 1000 * 0.60
    video = max_cost_micros(
        Protocol.OPENAI_VIDEOS, ModelSpec(per_video_second=0.1), {"prompt": "x", "seconds": "8"}
    )
    assert video >= 800_000


def test_chat_input_crosses_between_openai_and_anthropic() -> None:
    openai_input = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 1.0,
        "stop": "END",
    }
    anthropic_input = translate(
        Protocol.OPENAI_CHAT, Protocol.ANTHROPIC_MESSAGES, openai_input, MINI
    )
    assert anthropic_input == {
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 1000,
        "system": "Be brief.",
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }
    back = translate(Protocol.ANTHROPIC_MESSAGES, Protocol.OPENAI_CHAT, anthropic_input, MINI)
    assert back["messages"][0] == {"role": "system", "content": "Be brief."}
    assert back["temperature"] == 1.0


def test_no_translation_between_kinds() -> None:
    with pytest.raises(ValueError, match="no translation"):
        translate(Protocol.OPENAI_CHAT, Protocol.OPENAI_VIDEOS, {}, MINI)


def test_a_fallback_of_another_kind_is_a_configuration_error() -> None:
    chat = Route(
        name="a",
        protocol="openai-chat",
        base_url="http://127.0.0.1:1/v1",
        models={"m": {"fallbacks": ["b/v"]}},
    )
    video = Route(
        name="b", protocol="openai-videos", base_url="http://127.0.0.1:1/v1", models=["v"]
    )
    with pytest.raises(ValueError, match="is a video model, not chat"):
        Routes({"a": chat, "b": video})
