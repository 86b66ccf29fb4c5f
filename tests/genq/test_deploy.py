"""What an operator starts genq with: the Procfile and docker-compose.yml."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genq.cli import app

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        entries[name] = command.split()
    return entries


def test_procfile_runs_genq_commands_that_exist() -> None:
    entries = procfile()

    assert {"web", "worker", "scheduler", "release"} <= set(entries)
    for command in entries.values():
        assert command[0] == "genq"
        result = CliRunner().invoke(app, [command[1], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_honcho_accepts_the_procfile_with_exactly_genqs_process_types() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "honcho", "check", "-f", "Procfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    # honcho also exits 0 on a file with no valid lines, so the names it found are the proof.
    detected = re.search(r"Valid procfile detected \((.*)\)", result.stderr)
    assert detected, result.stderr
    assert sorted(detected[1].split(", ")) == ["release", "scheduler", "web", "worker"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_parses_with_the_services_genq_needs() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {"api", "worker", "scheduler", "redis", "postgres"} <= set(result.stdout.split())


def test_the_grafana_dashboard_charts_only_metrics_genq_exports() -> None:
    import json
    import re

    from prometheus_client import REGISTRY

    import infra.metrics  # noqa: F401 (registers genq's metrics)
    from workers.scheduler import SWEPT  # noqa: F401

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exported = {metric.name for metric in REGISTRY.collect()} | {
        "genq_jobs_in_state",
        "genq_dead_letters_open",
        "genq_circuit_state",
        "genq_queue_depth",
        "genq_queue_oldest_message_age_seconds",
        "dramatiq_messages_inprogress",
    }
    charted = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:genq|dramatiq)_[a-z_]+", target["expr"])
    }
    assert len(dashboard["panels"]) >= 12
    assert charted <= exported, charted - exported
