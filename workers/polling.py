"""When to poll an async provider job next.

For now: the provider's own hint (``openai-poll-after-ms``) when it gives one, else a
tenth of the model's expected duration, kept between 1 s and 30 s. The scheduler issue
replaces this with an adaptive policy.
"""

from schema.routes import ModelSpec
from workers.providers import PollResult

MIN_S = 1.0
MAX_S = 30.0
DEFAULT_EXPECTED_S = 60.0


def next_poll_in_s(spec: ModelSpec, poll: PollResult) -> float:
    if poll.poll_after_s is not None:
        return max(0.0, poll.poll_after_s)
    expected = spec.expected_duration_s or DEFAULT_EXPECTED_S
    return min(MAX_S, max(MIN_S, expected / 10))
