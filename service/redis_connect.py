"""Redis connections for the cache: one server, Sentinel, or Cluster, chosen by REDIS_URL.

    redis://host:port/db                    one server (or a managed endpoint that fails over itself)
    redis+sentinel://[:pw@]h1:p1,h2:p2/name[/db]   Sentinel: the master of `name`, found through the
                                            sentinels listed (give all of them; any one answers)
    redis+cluster://[:pw@]h1:p1,h2:p2       Cluster: the nodes listed are startup nodes only
    redis://host:port + REDIS_CLUSTER=1     Cluster as well (for platforms that hand out redis:// URLs)

Everything the cache stores lives in ONE hash slot (a `{...}` hash tag in the key prefix, see
`hash_tagged`), because its Lua scripts touch the epoch, an entry and its tag sets together and Redis
Cluster runs a script only on keys of one slot. The cache therefore has one master at a time in every
mode, and `slot_master` is the one plain connection to it that the cache's subscriber and failover
fence use (pub/sub messages are broadcast to every node of a cluster, so that node hears them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

PLAIN, SENTINEL, CLUSTER = "plain", "sentinel", "cluster"


@dataclass(frozen=True)
class RedisTarget:
    mode: str
    url: str  # the original URL
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels (SENTINEL) or startup nodes (CLUSTER)
    service_name: str = ""  # SENTINEL: the master's name
    db: int = 0
    password: str | None = None
    username: str | None = None


def parse_redis_url(url: str, cluster: bool = False) -> RedisTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix") and not cluster:
        return RedisTarget(PLAIN, url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        nodes.append((name, int(port) if port else (26379 if scheme == "redis+sentinel" else 6379)))
    if not nodes:
        raise ValueError("REDIS_URL names no host")
    common = {"nodes": tuple(nodes), "password": unquote(password) or None, "username": unquote(username) or None}
    if scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("redis+sentinel:// needs the master's name: redis+sentinel://h1:p1,h2:p2/mymaster")
        return RedisTarget(SENTINEL, url, service_name=path[0], db=int(path[1]) if len(path) > 1 else 0, **common)
    if scheme == "redis+cluster" or (cluster and scheme in ("redis", "rediss")):
        return RedisTarget(CLUSTER, url, **common)
    raise ValueError(f"REDIS_URL scheme {parts.scheme!r} is not redis://, redis+sentinel:// or redis+cluster://")


def hash_tagged(prefix: str) -> str:
    """`aw:` -> `{aw}:`: every key under the prefix hashes to one slot. A prefix that already has a
    hash tag is kept as it is."""
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 2) > start:
        return prefix
    return "{" + prefix.rstrip(":") + "}:"


def connect(target: RedisTarget, **options):
    """A redis.asyncio client for commands (scripts, GETs). `options`: socket timeouts etc."""
    import redis.asyncio as redis

    if target.mode == PLAIN:
        return redis.Redis.from_url(target.url, **options)
    auth = {"password": target.password, "username": target.username}
    if target.mode == SENTINEL:
        from redis.asyncio.sentinel import Sentinel

        # The sentinels get the connect timeout only: they answer "who is the master" and nothing else.
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs={
            "socket_timeout": options.get("socket_connect_timeout"),
            "socket_connect_timeout": options.get("socket_connect_timeout")})
        return sentinel.master_for(target.service_name, db=target.db, **auth, **options)
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    options.pop("retry_on_timeout", None)  # not a RedisCluster option
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes], **auth, **options)


async def slot_master(target: RedisTarget, key: str, **options):
    """A plain client to the master that holds `key`'s slot now (for pub/sub, INFO and SCAN).

    SENTINEL: a client that follows the master (Sentinel is asked on every reconnect). CLUSTER: a
    client to the node that owns the slot, looked up afresh (the topology may have changed).
    PLAIN: a client to the one server."""
    import redis.asyncio as redis

    if target.mode == CLUSTER:
        # A short-lived cluster client of its own: the command client's topology is its own business.
        lookup = connect(target, socket_timeout=options.get("socket_connect_timeout"),
                         socket_connect_timeout=options.get("socket_connect_timeout"))
        try:
            await lookup.initialize()
            node = lookup.get_node_from_key(key)
        finally:
            await lookup.aclose()
        return redis.Redis(host=node.host, port=node.port, password=target.password,
                           username=target.username, **options)
    return connect(target, **options)


def subscriber_options(connect_timeout: float) -> dict:
    """Options of the cache's subscriber connection. No socket timeout (it waits idle between
    messages) and NO automatic retry: redis-py's pub/sub would otherwise reconnect and resubscribe by
    itself, silently, after a Redis restart or failover, and the near cache would keep copies that
    missed the invalidations published meanwhile. The cache's own loop reconnects instead, empties the
    near cache and passes the failover fence first."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return {"socket_connect_timeout": connect_timeout, "health_check_interval": 5, "retry": Retry(NoBackoff(), 0)}
