"""The call one attempt makes: the job's current route and model, with its input carried
over to that route's protocol, and the fallback chain it may move along."""

from dataclasses import dataclass
from typing import Any

from schema.errors import ErrorClass, JobStop
from schema.routes import ModelSpec, Route, Routes, UnknownModelError
from workers.providers.translate import translate


@dataclass(frozen=True)
class Call:
    """The route, model and input one attempt uses."""

    route: Route
    model: str
    spec: ModelSpec
    input: dict[str, Any]


def prepare(routes: Routes, model_ref: str, current_model: str, input: dict[str, Any]) -> Call:
    """The current route and model, with the job's input rewritten for its protocol; a
    ``JobStop`` if the routes no longer know the model or cannot carry the input."""
    try:
        route, model = routes.resolve(current_model)
        requested, _ = routes.resolve(model_ref)
    except UnknownModelError as exc:
        raise JobStop(ErrorClass.CONFIGURATION, str(exc)) from None
    spec = route.models[model]
    try:
        input = translate(requested.protocol, route.protocol, input, spec)
    except (ValueError, KeyError, TypeError) as exc:
        message = f"cannot carry the input to {route.protocol}: {exc}"
        raise JobStop(ErrorClass.CONFIGURATION, message) from None
    return Call(route, model, spec, input)


def chain(routes: Routes, model_ref: str) -> tuple[str, ...]:
    """The model the job asked for, then its fallbacks in order; a fallback whose route
    lacks its key is left out, since every call to it would fail its auth."""
    fallbacks = routes.spec(model_ref).fallbacks
    return (model_ref, *(ref for ref in fallbacks if routes.resolve(ref)[0].keyed))


def next_in_chain(models: tuple[str, ...], current_model: str) -> str | None:
    """The model after ``current_model`` in the chain, if any."""
    if current_model not in models:
        return None
    rest = models[models.index(current_model) + 1 :]
    return rest[0] if rest else None
