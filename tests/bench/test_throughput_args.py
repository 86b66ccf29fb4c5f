"""The throughput bench refuses a round count it cannot take a median of, before it
starts anything."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_a_round_count_below_one_is_refused_with_exit_code_2(rounds: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", rounds], capture_output=True, text=True
    )

    assert done.returncode == 2
    assert "--rounds: must be a whole number of at least 1" in done.stderr
