"""Where a worker host's processes keep their Prometheus metrics, so that Dramatiq's
exposition server can serve them summed over every process.

prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, and
Dramatiq's middleware reads ``dramatiq_prom_*`` when it is; ``genq worker`` therefore
starts Dramatiq in a fresh interpreter with this environment.
"""

import shutil
import socket

from schema.errors import GenqError
from schema.settings import Settings

ENABLED = "GENQ_WORKER_METRICS"


def worker_environment(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the metrics settings, over a fresh directory (old processes' files
    would be summed in)."""
    if not settings.worker_metrics_port:
        return env
    _check_free(settings.worker_metrics_port)
    directory = (settings.var_dir / "metrics" / f"worker-{settings.worker_metrics_port}").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return {
        **env,
        ENABLED: "1",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "dramatiq_prom_db": str(directory),
        "dramatiq_prom_port": str(settings.worker_metrics_port),
    }


class MetricsPortTakenError(GenqError, RuntimeError):
    """Another worker on this host serves metrics on the port already."""


def _check_free(port: int) -> None:
    """Fail before touching the directory another worker on this host may be using."""
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            raise MetricsPortTakenError(
                f"port {port} is taken (another worker on this host?); give this worker its "
                "own GENQ_WORKER_METRICS_PORT, or 0 for none"
            ) from None
