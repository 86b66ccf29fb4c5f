"""The HTTP API (FastAPI): one router per area over ``Producer``. OpenAPI is served at /docs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producers import (
    admin,
    admin_ops,
    console,
    errors,
    health_api,
    jobs_api,
    metrics_api,
    provider_callbacks,
    webhooks_api,
)
from producers.body_limit import BodySizeLimit
from producers.producer import Producer


def create_app(producer: Producer) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        producer.sent_marks.close()  # so a clean stop leaves the relay nothing to re-send

    app = FastAPI(
        lifespan=lifespan,
        title="genq",
        version="0.1.0",
        summary="Queue AI generation jobs; get results by polling or signed webhooks.",
    )
    app.state.producer = producer
    app.state.store_metrics = metrics_api.store_registry(producer)
    app.state.fal_key_sets = provider_callbacks.key_sets()
    app.add_middleware(BodySizeLimit, max_bytes=producer.settings.max_body_bytes)
    errors.install(app)
    app.include_router(jobs_api.router(producer.settings))
    app.include_router(health_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(metrics_api.router)
    app.include_router(admin.router)
    app.include_router(provider_callbacks.router)
    app.include_router(admin_ops.router)
    console.install(app, producer.settings)
    return app
