"""What an operator starts genq with: the Procfile and docker-compose.yml."""

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genq.cli import app

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_parses_with_the_services_genq_needs() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {"api", "worker", "scheduler", "redis", "postgres"} <= set(result.stdout.split())
