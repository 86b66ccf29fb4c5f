"""Provider answers that arrived but could not be committed (the database failed at that
moment), kept in Redis for a while so that the job's next attempt uses them instead of
paying the provider again: a finished call's result, or an async submission's provider
job, which the next attempt then follows instead of starting another.

A kept answer belongs to the model that gave it; an attempt on another model ignores it.
Redis failures only log: keeping is a saving, never a condition of the job going on.
"""

import json
import logging
from dataclasses import asdict

import redis

from schema.names import BROKER_NAMESPACE
from workers.providers import AsyncState, PollResult, ProviderResult

PREFIX = f"{BROKER_NAMESPACE}:kept"
logger = logging.getLogger(__name__)

Kept = ProviderResult | PollResult


class KeptAnswers:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def keep(self, job_id: str, model_ref: str, answer: Kept) -> None:
        """Keep ``answer`` for ``job_id``'s next attempt on ``model_ref``."""
        if isinstance(answer, PollResult):
            kept = {"poll": {"id": answer.provider_job_id, "request_id": answer.request_id}}
        else:
            kept = {"result": asdict(answer)}
        try:
            self.client.set(
                f"{PREFIX}:{job_id}", json.dumps({"model": model_ref, **kept}), ex=self.ttl_s
            )
        except redis.RedisError:
            logger.warning("could not keep the answer for job %s", job_id, exc_info=True)

    def holds(self, job_id: str, model_ref: str) -> bool:
        """Whether an answer is kept for ``job_id`` on ``model_ref``."""
        try:
            raw = self.client.get(f"{PREFIX}:{job_id}")
        except redis.RedisError:
            logger.warning("kept answers unavailable", exc_info=True)
            return False
        return raw is not None and json.loads(raw)["model"] == model_ref

    def take(self, job_id: str, model_ref: str) -> Kept | None:
        """The answer kept for this job on this model, removed so it is used once."""
        try:
            raw = self.client.getdel(f"{PREFIX}:{job_id}")
        except redis.RedisError:
            logger.warning("kept answers unavailable", exc_info=True)
            return None
        kept = json.loads(raw) if raw else None
        if kept is None or kept["model"] != model_ref:
            return None
        if "poll" in kept:
            poll = kept["poll"]
            return PollResult(poll["id"], AsyncState.RUNNING, poll["request_id"], 200)
        return ProviderResult(**kept["result"])
