"""The polling bench's side of the wire: a minimal keep-alive HTTP client, the simulator in a
subprocess, and each async protocol's submit and status read, reduced to what a polling
policy sees (the same reading genq's adapters make of each answer)."""

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from genq.processes import free_port, wait_until
from workers.providers.replicate_predictions import logged_progress

KEY = "sk-genq-bench"
RUNWAY_THROTTLED_S = 5.0
"""What genq's Runway adapter sets as the poll floor of a THROTTLED task."""


class Client:
    """Keep-alive HTTP/1.1 to the simulator, enough for its JSON answers (Content-Length)."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.unopened = connections

    async def request(
        self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[dict, dict]:
        """The JSON answer and the lower-cased headers; raises unless 2xx."""
        if self.idle.empty() and self.unopened:
            self.unopened -= 1
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        reader, writer = await self.idle.get()
        payload = b"" if body is None else json.dumps(body).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: sim\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        answer = dict(line.lower().split(": ", 1) for line in head[1:] if line)
        data = await reader.readexactly(int(answer["content-length"]))
        self.idle.put_nowait((reader, writer))
        if not head[0].split()[1].startswith("2"):
            raise RuntimeError(f"{method} {target}: {head[0]} {data.decode(errors='replace')}")
        return json.loads(data), answer

    def close(self) -> None:
        """Close the idle connections."""
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


class Sim:
    """The simulator in a subprocess, configured for the bench."""

    def __init__(self, var: Path, config: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genq", "sim", "--port", str(self.port)],
            stdout=open(var / "sim.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, 30, "the simulator")
        httpx.post(f"{self.url}/_sim/config", json=config).raise_for_status()
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_sim/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def jwks(self) -> dict[str, Any]:
        """The key set the simulator signs fal webhooks with."""
        data: dict[str, Any] = httpx.get(f"{self.url}/_sim/fal/jwks.json").json()
        return data

    def replicate_secret(self) -> str:
        """The account's secret the simulator signs Replicate webhooks with."""
        headers = {"Authorization": f"Bearer {KEY}"}
        answer = httpx.get(f"{self.url}/v1/webhooks/default/secret", headers=headers)
        return str(answer.raise_for_status().json()["key"])

    def jobs(self) -> dict[str, dict]:
        """Every job's timeline by id."""
        data = httpx.get(f"{self.url}/_sim/jobs", timeout=30).raise_for_status().json()["data"]
        return {job["id"]: job for job in data}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@dataclass(frozen=True)
class Status:
    """One answer about a job, as a polling policy sees it; hint_s in provider seconds."""

    done: bool
    queued: bool = False
    progress: float | None = None
    queue_position: int | None = None
    hint_s: float | None = None


def _failed(job_id: str, data: dict) -> RuntimeError:
    return RuntimeError(f"job {job_id} failed: {data}")


class Wire:
    """One async protocol: submit a job (its simulator id, and what the answer showed),
    read its status."""

    name = ""
    callbacks = False
    """Whether submit can ask the provider to call back when the job completes."""

    def __init__(self, client: Client, scale: float) -> None:
        self.client = client
        self.scale = scale

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        raise NotImplementedError

    async def poll(self, job_id: str) -> Status:
        raise NotImplementedError


class OpenAIVideos(Wire):
    name = "openai-videos"
    headers: ClassVar[dict[str, str]] = {"Authorization": f"Bearer {KEY}"}

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        body = {"model": "sora-2", "prompt": "a lighthouse at dusk", "seconds": "8"}
        video, headers = await self.client.request("POST", "/v1/videos", body, self.headers)
        return video["id"], self._read(video, headers)

    async def poll(self, job_id: str) -> Status:
        target = f"/v1/videos/{job_id}"
        video, headers = await self.client.request("GET", target, None, self.headers)
        return self._read(video, headers)

    def _read(self, video: dict, headers: dict) -> Status:
        if video["status"] == "failed":
            raise _failed(video["id"], video)
        hint = headers.get("openai-poll-after-ms")  # the simulator sends it in scaled wall ms
        hint_s = int(hint) / 1000 / self.scale if hint and hint.isdigit() else None
        return Status(
            video["status"] == "completed", progress=float(video["progress"]), hint_s=hint_s
        )


class ReplicatePredictions(Wire):
    name = "replicate-predictions"
    callbacks = True
    headers: ClassVar[dict[str, str]] = {"Authorization": f"Bearer {KEY}"}

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        target = "/v1/models/black-forest-labs/flux-schnell/predictions"
        body: dict[str, Any] = {"input": {"prompt": "a lighthouse at dusk"}}
        if webhook_url:
            body |= {"webhook": f"{webhook_url}/replicate", "webhook_events_filter": ["completed"]}
        data, _ = await self.client.request("POST", target, body, self.headers)
        return data["id"], self._read(data)

    async def poll(self, job_id: str) -> Status:
        data, _ = await self.client.request("GET", f"/v1/predictions/{job_id}", None, self.headers)
        return self._read(data)

    @staticmethod
    def _read(data: dict) -> Status:
        if data["status"] in ("failed", "canceled"):
            raise _failed(data["id"], data)
        progress = logged_progress(data["logs"]) if data["status"] == "processing" else None
        return Status(data["status"] == "succeeded", data["status"] == "starting", progress)


class GoogleVeo(Wire):
    name = "google-veo"
    model = "/v1/publishers/google/models/veo-3.0-fast-generate-001"
    headers: ClassVar[dict[str, str]] = {"x-goog-api-key": KEY}

    def __init__(self, client: Client, scale: float) -> None:
        super().__init__(client, scale)
        self.names: dict[str, str] = {}
        """Operation names by the simulator's job id (their last segment)."""

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        body = {"instances": [{"prompt": "a lighthouse at dusk"}], "parameters": {}}
        target = f"{self.model}:predictLongRunning"
        data, _ = await self.client.request("POST", target, body, self.headers)
        job_id = data["name"].rpartition("/operations/")[2]
        self.names[job_id] = data["name"]
        return job_id, self._read(data)

    async def poll(self, job_id: str) -> Status:
        body = {"operationName": self.names[job_id]}
        target = f"{self.model}:fetchPredictOperation"
        data, _ = await self.client.request("POST", target, body, self.headers)
        return self._read(data)

    @staticmethod
    def _read(data: dict) -> Status:
        if data.get("error"):
            raise _failed(data["name"], data)
        return Status(bool(data.get("done")))


class FalQueue(Wire):
    name = "fal-queue"
    callbacks = True
    headers: ClassVar[dict[str, str]] = {"Authorization": f"Key {KEY}"}

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        target = "/fal/fal-ai/veo3/fast" + (
            f"?fal_webhook={webhook_url}/fal" if webhook_url else ""
        )
        data, _ = await self.client.request("POST", target, {"prompt": "waves"}, self.headers)
        return data["request_id"], Status(False, True, queue_position=data["queue_position"])

    async def poll(self, job_id: str) -> Status:
        target = f"/fal/fal-ai/veo3/requests/{job_id}/status"
        data, _ = await self.client.request("GET", target, None, self.headers)
        if data.get("error"):
            raise _failed(job_id, data)
        queued = data["status"] == "IN_QUEUE"
        position = data["queue_position"] if queued else None
        return Status(data["status"] == "COMPLETED", queued, queue_position=position)


class RunwayTasks(Wire):
    name = "runway-tasks"
    headers: ClassVar[dict[str, str]] = {
        "Authorization": f"Bearer {KEY}",
        "X-Runway-Version": "2024-11-06",
    }

    async def submit(self, webhook_url: str | None = None) -> tuple[str, Status]:
        body = {"model": "gen4.5", "promptText": "waves", "ratio": "1280:720", "duration": 5}
        data, _ = await self.client.request("POST", "/v1/text_to_video", body, self.headers)
        return data["id"], Status(False, True)  # a new task is PENDING

    async def poll(self, job_id: str) -> Status:
        data, _ = await self.client.request("GET", f"/v1/tasks/{job_id}", None, self.headers)
        status = data["status"]
        if status in ("FAILED", "CANCELLED"):
            raise _failed(job_id, data)
        progress = 100 * float(data["progress"]) if status == "RUNNING" else None
        hint_s = RUNWAY_THROTTLED_S if status == "THROTTLED" else None
        return Status(
            status == "SUCCEEDED", status in ("PENDING", "THROTTLED"), progress, None, hint_s
        )


WIRES: tuple[type[Wire], ...] = (
    OpenAIVideos,
    ReplicatePredictions,
    GoogleVeo,
    FalQueue,
    RunwayTasks,
)
