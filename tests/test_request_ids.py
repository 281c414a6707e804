"""Request ids are unique across `serve --workers N`: each forked worker picks its own prefix."""

import os

from service.app import new_request_id


def ids_from_child(count: int) -> list[str]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: what `serve --workers` runs after its fork
        try:
            os.write(write_end, ",".join(new_request_id() for _ in range(count)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text.split(",")


def test_forked_workers_hand_out_distinct_request_ids():
    parent = [new_request_id() for _ in range(3)]
    first, second = ids_from_child(100), ids_from_child(100)
    everything = parent + first + second
    assert len(set(everything)) == len(everything)
    assert len({i[:12] for i in everything}) == 3  # one prefix per process
