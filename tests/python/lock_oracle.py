"""redis-py's Lock, as the reference worker uses it, against the Rust lock.

argv: take NAME TTL_MS   acquire and leave it held (it lapses after TTL_MS); prints "taken"
      try NAME           non-blocking acquire; prints "true" (then releases) or "false"
"""
import sys

import redis

r = redis.StrictRedis.from_url("redis://127.0.0.1:6379/0")
mode, name = sys.argv[1], sys.argv[2]
if mode == "take":
    lock = r.lock(name, timeout=int(sys.argv[3]) / 1000)
    assert lock.acquire(blocking=False)
    print("taken")
else:
    lock = r.lock(name, timeout=5)
    got = lock.acquire(blocking=False)
    print("true" if got else "false")
    if got:
        lock.release()
