import time

from rollout_control.core.ratelimit import TokenBucket, retry_after_header


def test_bucket__burst_then_refusal_with_wait() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert [bucket.take("a") for _ in range(2)] == [0.0, 0.0]
    wait = bucket.take("a")
    assert 0 < wait <= 1
    assert retry_after_header(wait) == "1"
    assert bucket.take("b") == 0.0  # per key


def test_bucket__many_clients__refilled_ones_forgotten() -> None:
    bucket = TokenBucket(rate=1000, burst=1)
    bucket.max_keys = 10
    for n in range(11):
        bucket.take(n)
    time.sleep(0.01)  # all refilled
    bucket.take("new")
    assert len(bucket._buckets) == 1
