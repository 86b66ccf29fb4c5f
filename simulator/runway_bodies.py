"""Request bodies of Runway's generation endpoints, checked as Runway's schema checks them.

The body is a union discriminated by ``model``: ``POST /v1/text_to_video`` takes
``model``, ``promptText``, ``ratio`` and an optional ``duration`` (required by
``gen4.5``) and ``seed``; ``POST /v1/image_to_video`` also takes ``promptImage``, an
HTTPS URL or data URI, or a list of ``{uri, position}``. Unknown keys are ignored, as
zod strips them. Each problem is one zod issue in the 400's ``issues``.
"""

import json
from typing import Any

from simulator.runway_protocol import invalid_body, issue

TEXT_MODELS = {
    "gen4.5": {"ratios": ("1280:720", "720:1280"), "durations": range(2, 11), "default": None},
    "veo3.1": {
        "ratios": ("1280:720", "720:1280", "1080:1920", "1920:1080"),
        "durations": (4, 6, 8),
        "default": 8,
    },
    "veo3.1_fast": {
        "ratios": ("1280:720", "720:1280", "1080:1920", "1920:1080"),
        "durations": (4, 6, 8),
        "default": 8,
    },
}
IMAGE_MODELS = {
    **TEXT_MODELS,
    "gen4_turbo": {
        "ratios": ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"),
        "durations": range(2, 11),
        "default": 10,
    },
}
CREDITS_PER_SECOND = {"gen4.5": 12, "gen4_turbo": 5, "veo3.1": 40, "veo3.1_fast": 15}
MAX_PROMPT_CHARS = 1000
MAX_SEED = 4_294_967_295
POSITIONS = ("first", "last")


def parse_task_body(raw: bytes, image: bool) -> dict[str, Any]:
    """The checked body of a text_to_video (or, if image, image_to_video) request, with its
    duration filled in; else Runway's 400."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_body([_type_issue([], "object", "invalid JSON")]) from None
    if not isinstance(body, dict):
        raise invalid_body([_type_issue([], "object", _json_type(body))])
    models = IMAGE_MODELS if image else TEXT_MODELS
    spec = models.get(body.get("model"))  # type: ignore[arg-type]
    if spec is None:
        problem = issue(
            ["model"], "invalid_union", "Invalid input", note="No matching discriminator"
        )
        raise invalid_body([{**problem, "errors": [], "discriminator": "model"}])
    problems = [
        *_prompt_text(body, required=not image),
        *_choice(body, "ratio", spec["ratios"], required=True),
        *_duration(body, spec),
        *_seed(body),
        *(_prompt_image(body) if image else []),
    ]
    if problems:
        raise invalid_body(problems)
    return {**body, "duration": body.get("duration", spec["default"])}


def _prompt_text(body: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    if "promptText" not in body:
        return [_type_issue(["promptText"], "string", "undefined")] if required else []
    text = body["promptText"]
    if not isinstance(text, str):
        return [_type_issue(["promptText"], "string", _json_type(text))]
    if not text.strip():
        return [_size_issue(["promptText"], "too_small", "minimum", 1, "string")]
    if len(text.encode("utf-16-le")) // 2 > MAX_PROMPT_CHARS:
        return [_size_issue(["promptText"], "too_big", "maximum", MAX_PROMPT_CHARS, "string")]
    return []


def _choice(
    body: dict[str, Any],
    name: str,
    values: tuple[str, ...],
    required: bool,
    within: tuple[str | int, ...] = (),
) -> list[dict[str, Any]]:
    if name not in body and not required:
        return []
    if body.get(name) in values:
        return []
    options = "|".join(f'"{value}"' for value in values)
    message = f"Invalid option: expected one of {options}"
    return [issue([*within, name], "invalid_value", message, values=list(values))]


def _duration(body: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    if "duration" not in body:
        missing = spec["default"] is None
        return [_type_issue(["duration"], "int", "undefined")] if missing else []
    duration = body["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int):
        return [_type_issue(["duration"], "int", _json_type(duration))]
    allowed = spec["durations"]
    if duration in allowed:
        return []
    if isinstance(allowed, range):
        if duration < allowed.start:
            return [_size_issue(["duration"], "too_small", "minimum", allowed.start, "number")]
        return [_size_issue(["duration"], "too_big", "maximum", allowed.stop - 1, "number")]
    message = f"Invalid option: expected one of {'|'.join(map(str, allowed))}"
    return [issue(["duration"], "invalid_value", message, values=list(allowed))]


def _seed(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "seed" not in body:
        return []
    seed = body["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        return [_type_issue(["seed"], "int", _json_type(seed))]
    if seed < 0:
        return [_size_issue(["seed"], "too_small", "minimum", 0, "number")]
    if seed > MAX_SEED:
        return [_size_issue(["seed"], "too_big", "maximum", MAX_SEED, "number")]
    return []


def _prompt_image(body: dict[str, Any]) -> list[dict[str, Any]]:
    image = body.get("promptImage")
    if isinstance(image, str):
        return _uri(["promptImage"], image)
    if not isinstance(image, list) or not 1 <= len(image) <= len(POSITIONS):
        return [_type_issue(["promptImage"], "string", _json_type(image))]
    problems = []
    for index, part in enumerate(image):
        path: list[str | int] = ["promptImage", index]
        if not isinstance(part, dict) or not isinstance(part.get("uri"), str):
            problems.append(_type_issue([*path, "uri"], "string", "undefined"))
            continue
        problems += _uri([*path, "uri"], part["uri"])
        problems += _choice(part, "position", POSITIONS, required=True, within=tuple(path))
    return problems


def _uri(path: list[str | int], uri: str) -> list[dict[str, Any]]:
    if uri.startswith(("https://", "data:image/", "runway://")):
        return []
    return [issue(path, "custom", "Only HTTPS URLs, data URIs and Runway upload URIs are allowed.")]


def _type_issue(path: list[str | int], expected: str, received: str) -> dict[str, Any]:
    message = f"Invalid input: expected {expected}, received {received}"
    return issue(path, "invalid_type", message, expected=expected)


def _size_issue(
    path: list[str | int], code: str, bound: str, limit: int, origin: str
) -> dict[str, Any]:
    relation = "<=" if bound == "maximum" else ">="
    unit = " characters" if origin == "string" else ""
    message = f"Too {'big' if code == 'too_big' else 'small'}: expected {origin} to have "
    message += f"{relation}{limit}{unit}"
    return issue(path, code, message, origin=origin, inclusive=True, **{bound: limit})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array"}.get(type(value), "object")
