"""OpenAI's model listing: the models the simulator serves."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.openai_protocol import model_not_found, openai_endpoint

CHAT_MODELS = {
    "gpt-4o-mini": 1721172741,
    "gpt-4o": 1715367049,
    "gpt-4.1-mini": 1744318173,
}
IMAGE_MODELS = {
    "gpt-image-1": 1745517030,
    "dall-e-3": 1698785189,
    "dall-e-2": 1698798177,
}
VIDEO_MODELS = {
    "sora-2": 1759708615,
    "sora-2-pro": 1759708663,
}
MODELS = CHAT_MODELS | IMAGE_MODELS | VIDEO_MODELS
"""Model ids mapped to their creation time, as OpenAI lists them."""


def model_object(model: str) -> dict[str, Any]:
    """OpenAI's description of one model."""
    return {"id": model, "object": "model", "created": MODELS[model], "owned_by": "system"}


@openai_endpoint("models.list")
async def list_models(request: Request) -> JSONResponse:
    """GET /v1/models."""
    return JSONResponse({"object": "list", "data": [model_object(model) for model in MODELS]})


@openai_endpoint("models.retrieve")
async def retrieve_model(request: Request) -> JSONResponse:
    """GET /v1/models/{model}."""
    model = request.path_params["model"]
    if model not in MODELS:
        raise model_not_found(model)
    return JSONResponse(model_object(model))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
]
