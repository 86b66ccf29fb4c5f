"""How long a simulated async job (a video, a prediction) takes.

Real generation times are right-skewed: most jobs take about the median, a
few take much longer. A lognormal draw, clamped to a plausible range, models
that; `time_scale` then shrinks it so tests and benches run fast.
"""

import math
import random

from simulator.config import SimConfig


def job_duration(config: SimConfig, rng: random.Random) -> float:
    """Seconds one job takes: the fixed duration or a clamped lognormal draw, times time_scale."""
    if config.fixed_duration_s is not None:
        seconds = config.fixed_duration_s
    else:
        drawn = rng.lognormvariate(math.log(config.duration_median_s), config.duration_sigma)
        seconds = min(max(drawn, config.duration_min_s), config.duration_max_s)
    return seconds * config.time_scale
