"""One scheduler at a time: a lease in Redis held by the leader and renewed while it
lives. Another replica takes over within one lease after the leader dies."""

import uuid

import redis

from schema.names import BROKER_NAMESPACE

KEY = f"{BROKER_NAMESPACE}:scheduler:leader"

CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leadership:
    def __init__(self, client: redis.Redis, lease_s: float) -> None:
        self.client = client
        self.lease_ms = int(lease_s * 1000)
        self.id = uuid.uuid4().hex
        self.held = False
        self._claim = client.register_script(CLAIM)
        self._release = client.register_script(RELEASE)

    def renew(self) -> bool:
        """Take the lease if it is free, extend it if ours; say whether we lead."""
        try:
            self.held = bool(self._claim(keys=[KEY], args=[self.id, self.lease_ms]))
        except redis.RedisError:
            self.held = False
        return self.held

    def release(self) -> None:
        self._release(keys=[KEY], args=[self.id])
        self.held = False
