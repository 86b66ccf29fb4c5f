"""The simulator's own endpoints, under /_sim, for tests and benches to inspect and steer it.

GET  /_sim/stats           counters since start or the last reset
POST /_sim/reset           zero counters, rate-limit buckets, jobs and hooks; reseed the RNGs
GET  /_sim/config          the config
POST /_sim/config          change some config fields (a partial SimConfig)
GET  /_sim/faults          the fault rules, with their remaining counts
POST /_sim/faults          replace the fault rules with a JSON list
DELETE /_sim/faults        remove every fault rule
GET  /_sim/jobs            every async job's timeline
GET  /_sim/jobs/{id}       one async job's timeline

The sample webhook receiver's endpoints, /hooks and /_sim/hooks, are in `simulator.receiver`.
"""

import json
import random
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.config import SimConfig
from simulator.faults import FaultRule

RULES = TypeAdapter(list[FaultRule])


def clear_state(state: State) -> None:
    """Zero the counters, empty the rate-limit buckets, forget jobs and hooks, reseed the RNGs."""
    state.stats.clear()
    state.limits.clear()
    state.jobs.clear()
    state.hooks.clear()
    state.job_rng = random.Random(state.config.seed)
    state.fault_rng = random.Random(state.config.seed)


async def get_stats(request: Request) -> JSONResponse:
    """Calls, errors, 429s, faults and tokens counted since start or the last reset."""
    return JSONResponse(request.app.state.stats.snapshot())


async def reset(request: Request) -> JSONResponse:
    """Start afresh as far as counters, limits, jobs and hooks go; answer the zeroed stats."""
    clear_state(request.app.state)
    return JSONResponse(request.app.state.stats.snapshot())


async def get_config(request: Request) -> JSONResponse:
    """The config in effect."""
    return JSONResponse(request.app.state.config.model_dump(mode="json"))


async def update_config(request: Request) -> JSONResponse:
    """Set the fields a JSON object names, all or none of them, and answer the config."""
    config: SimConfig = request.app.state.config
    patch = await _read_json(request)
    if not isinstance(patch, dict):
        return _bad_request("expected a JSON object of SimConfig fields")
    try:
        updated = SimConfig.model_validate({**config.model_dump(), **patch})
    except ValidationError as error:
        return _bad_request(str(error))
    # Assigning field by field would validate each intermediate state, like a new
    # duration_min_s against the old duration_max_s; updated is valid as a whole.
    config.__dict__.update({name: getattr(updated, name) for name in patch})
    return JSONResponse(config.model_dump(mode="json"))


async def get_faults(request: Request) -> JSONResponse:
    """The fault rules in order, counts as they stand."""
    return _rules(request.app.state.config)


async def replace_faults(request: Request) -> JSONResponse:
    """Replace the fault rules with the JSON list sent."""
    try:
        rules = RULES.validate_python(await _read_json(request))
    except ValidationError as error:
        return _bad_request(str(error))
    request.app.state.config.faults = rules
    return _rules(request.app.state.config)


async def clear_faults(request: Request) -> JSONResponse:
    """Remove every fault rule."""
    request.app.state.config.faults = []
    return _rules(request.app.state.config)


async def list_jobs(request: Request) -> JSONResponse:
    """Every async job's timeline, oldest first."""
    state = request.app.state
    now = state.clock()
    return JSONResponse({"data": [job.describe(now) for job in state.jobs.values()]})


async def get_job(request: Request) -> JSONResponse:
    """One async job's timeline, by its video or prediction id."""
    state = request.app.state
    job = state.jobs.get(request.path_params["job_id"])
    if job is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(job.describe(state.clock()))


routes = [
    Route("/_sim/stats", get_stats, methods=["GET"]),
    Route("/_sim/reset", reset, methods=["POST"]),
    Route("/_sim/config", get_config, methods=["GET"]),
    Route("/_sim/config", update_config, methods=["POST"]),
    Route("/_sim/faults", get_faults, methods=["GET"]),
    Route("/_sim/faults", replace_faults, methods=["POST"]),
    Route("/_sim/faults", clear_faults, methods=["DELETE"]),
    Route("/_sim/jobs", list_jobs, methods=["GET"]),
    Route("/_sim/jobs/{job_id}", get_job, methods=["GET"]),
]


async def _read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _rules(config: SimConfig) -> JSONResponse:
    return JSONResponse([rule.model_dump(mode="json") for rule in config.faults])
