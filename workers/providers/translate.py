"""Carrying a job's input to a fallback route that speaks another protocol of the same kind.

Chat moves between OpenAI and Anthropic shapes (system messages, a required
``max_tokens``); images between OpenAI images and Replicate (a prompt and a count);
videos between OpenAI videos and Google Veo (a prompt, a length, an orientation), fal (a
prompt and a duration: ``"8"`` there, ``"8s"`` here) and Runway tasks (a prompt, a length
and a frame size).
"""

from typing import Any

from schema.inputs import RUNWAY_DEFAULT_DURATION_S
from schema.routes import ModelSpec, Protocol

OPENAI_VIDEO_SECONDS = (4, 8, 12)
RUNWAY_MAX_DURATION_S = 10


def translate(
    source: Protocol, target: Protocol, input: dict[str, Any], target_spec: ModelSpec
) -> dict[str, Any]:
    """``input`` written for ``source``, rewritten for ``target``."""
    if source == target:
        return input
    convert = _CONVERSIONS.get((source, target))
    if convert is None:
        raise ValueError(f"no translation from {source} to {target}")
    return convert(input, target_spec)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _openai_to_anthropic(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    system = [
        _text(m["content"]) for m in input["messages"] if m["role"] in ("system", "developer")
    ]
    messages = [
        {"role": m["role"], "content": m["content"]}
        for m in input["messages"]
        if m["role"] in ("user", "assistant")
    ]
    converted: dict[str, Any] = {
        "messages": messages,
        "max_tokens": input.get("max_completion_tokens")
        or input.get("max_tokens")
        or spec.max_output_tokens,
    }
    if system:
        converted["system"] = "\n\n".join(system)
    if "temperature" in input:
        converted["temperature"] = min(1.0, float(input["temperature"]) / 2)
    if "stop" in input:
        stop = input["stop"]
        converted["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    return converted


def _anthropic_to_openai(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": _text(m["content"])} for m in input["messages"]]
    if input.get("system"):
        messages.insert(0, {"role": "system", "content": _text(input["system"])})
    converted: dict[str, Any] = {"messages": messages, "max_tokens": input["max_tokens"]}
    if "temperature" in input:
        converted["temperature"] = float(input["temperature"]) * 2
    if "stop_sequences" in input:
        converted["stop"] = input["stop_sequences"]
    return converted


def _images_to_prediction(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    return {"prompt": input["prompt"], "num_outputs": int(input.get("n") or 1)}


def _prediction_to_images(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    return {"prompt": input.get("prompt", ""), "n": int(input.get("num_outputs") or 1)}


VEO_MAX_SECONDS = 8
PORTRAIT_SIZES = frozenset({"720x1280", "1024x1792"})


def _video_to_veo(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    portrait = input.get("size") in PORTRAIT_SIZES
    seconds = min(int(input.get("seconds") or 4), VEO_MAX_SECONDS)
    return {
        "instances": [{"prompt": input["prompt"]}],
        "parameters": {"durationSeconds": seconds, "aspectRatio": "9:16" if portrait else "16:9"},
    }


def _veo_to_video(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    parameters = input.get("parameters") or {}
    seconds = int(parameters.get("durationSeconds") or VEO_MAX_SECONDS)
    portrait = parameters.get("aspectRatio") == "9:16"
    return {
        "prompt": input["instances"][0].get("prompt") or "",
        "seconds": "4" if seconds <= 4 else "8",
        "size": "720x1280" if portrait else "1280x720",
    }


def _video_to_fal(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    converted = {"prompt": input["prompt"]}
    if "seconds" in input:
        converted["duration"] = f"{input['seconds']}s"
    return converted


def _fal_to_video(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    converted = {"prompt": input["prompt"]}
    if input.get("duration"):
        converted["seconds"] = str(input["duration"]).removesuffix("s")


def _video_to_runway(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    seconds = int(input.get("seconds") or 4)
    converted: dict[str, Any] = {
        "promptText": input["prompt"][:1000],
        "duration": min(seconds, RUNWAY_MAX_DURATION_S),
    }
    if input.get("size"):
        converted["ratio"] = str(input["size"]).replace("x", ":")
    return converted


def _runway_to_video(input: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    duration = int(input.get("duration") or RUNWAY_DEFAULT_DURATION_S)
    seconds = min(OPENAI_VIDEO_SECONDS, key=lambda allowed: abs(allowed - duration))
    converted: dict[str, Any] = {"prompt": input.get("promptText") or "", "seconds": str(seconds)}
    if input.get("ratio"):
        converted["size"] = str(input["ratio"]).replace(":", "x")
    return converted


_CONVERSIONS = {
    (Protocol.OPENAI_CHAT, Protocol.ANTHROPIC_MESSAGES): _openai_to_anthropic,
    (Protocol.ANTHROPIC_MESSAGES, Protocol.OPENAI_CHAT): _anthropic_to_openai,
    (Protocol.OPENAI_IMAGES, Protocol.REPLICATE_PREDICTIONS): _images_to_prediction,
    (Protocol.REPLICATE_PREDICTIONS, Protocol.OPENAI_IMAGES): _prediction_to_images,
    (Protocol.OPENAI_VIDEOS, Protocol.GOOGLE_VEO): _video_to_veo,
    (Protocol.GOOGLE_VEO, Protocol.OPENAI_VIDEOS): _veo_to_video,
    (Protocol.OPENAI_VIDEOS, Protocol.FAL_QUEUE): _video_to_fal,
    (Protocol.FAL_QUEUE, Protocol.OPENAI_VIDEOS): _fal_to_video,
    (Protocol.OPENAI_VIDEOS, Protocol.RUNWAY_TASKS): _video_to_runway,
    (Protocol.RUNWAY_TASKS, Protocol.OPENAI_VIDEOS): _runway_to_video,
}
