"""Redis connections from `GATEWAY_REDIS_URL`: one server, or the master Sentinel names.

With Sentinel, each new connection asks the Sentinels where the master is, and a
connection to a server that stopped being the master is dropped, so after a failover
the next command reaches the new master. arq's worker does the same with its own
pool, from `arq_settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.redisurl import parse_sentinel

if TYPE_CHECKING:
    from arq.connections import ArqRedis, RedisSettings


def connect(url: str, queue_name: str, *, connect_timeout: float, timeout: float) -> ArqRedis:
    """A client (connections made on first use) to the server, or to Sentinel's master."""
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool
    from redis.asyncio.sentinel import Sentinel

    sentinel = parse_sentinel(url)
    if sentinel is None:
        pool = ConnectionPool.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout
        )
        return ArqRedis(pool, default_queue_name=queue_name)
    # The timeouts reach the Sentinels too (Sentinel copies the socket_* options).
    client: ArqRedis = Sentinel(
        sentinel.sentinels,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        ssl=sentinel.ssl,
    ).master_for(
        sentinel.master,
        redis_class=ArqRedis,
        db=sentinel.db,
        username=sentinel.username,
        password=sentinel.password,
    )
    client.default_queue_name = queue_name
    return client


def arq_settings(url: str) -> RedisSettings:
    """arq's connection settings for the worker, in either form."""
    from arq.connections import RedisSettings

    sentinel = parse_sentinel(url)
    if sentinel is None:
        return RedisSettings.from_dsn(url)
    return RedisSettings(
        host=sentinel.sentinels,
        sentinel=True,
        sentinel_master=sentinel.master,
        database=sentinel.db,
        username=sentinel.username,
        password=sentinel.password,
        ssl=sentinel.ssl,
    )
