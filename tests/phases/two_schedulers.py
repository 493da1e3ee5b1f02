"""One of two scheduler processes for tests/phases/test_two_schedulers.py: for each round, wait
at a Redis barrier for the other process, then run the daily advance for that round's date."""

import sys
import time
from datetime import datetime, timedelta

import django


def main(start_iso: str, rounds: int, barrier_key: str) -> None:
    django.setup()
    import redis
    from django.conf import settings

    from phases.services import advance_ramps

    server = redis.Redis.from_url(settings.REDIS_URL)
    start = datetime.fromisoformat(start_iso)
    for round_ in range(rounds):
        key = f"{barrier_key}:{round_}"
        server.incr(key)
        server.expire(key, 300)
        deadline = time.monotonic() + 60
        while int(server.get(key) or 0) < 2:
            if time.monotonic() > deadline:
                raise SystemExit(f"round {round_}: the other scheduler never came")
            time.sleep(0.001)
        advance_ramps(now=start + timedelta(days=round_ + 1))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
