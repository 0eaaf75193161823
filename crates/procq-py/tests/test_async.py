"""``await q.get_async()``, ``put_async``, ``join_async`` (issue #16).

The event loop keeps running while a call waits for another process, a
timeout raises ``queue.Empty``/``queue.Full``, and a cancelled call loses
nothing.
"""

import asyncio
import queue
import time

import pytest

import procq
import workers


async def ticker(ticks):
    while True:
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


async def while_ticking(awaitable):
    """Awaits ``awaitable`` with a 10 ms ticker running; returns its
    result and the number of ticks meanwhile."""
    ticks = []
    t = asyncio.ensure_future(ticker(ticks))
    try:
        result = await awaitable
    finally:
        t.cancel()
    return result, len(ticks)


def test_the_loop_keeps_ticking_while_get_async_waits_for_another_process(ctx):
    q = procq.Queue()
    p = ctx.Process(target=workers.put_after, args=(q, 0.5, "late"))
    p.start()
    got, ticks = asyncio.run(while_ticking(q.get_async()))
    p.join(30)
    assert p.exitcode == 0
    assert got == "late"
    # ~50 ticks in 0.5 s; a get that blocked the loop would allow none.
    assert ticks >= 10, ticks


def test_put_async_and_join_async_wait_without_blocking_the_loop(ctx):
    q = procq.Queue(1)
    q.put("first")
    p = ctx.Process(target=workers.get_after, args=(q, 0.4))
    p.start()
    _, ticks = asyncio.run(while_ticking(q.put_async("second")))
    p.join(30)
    assert p.exitcode == 0 and ticks >= 8, ticks
    assert q.get(timeout=5) == "second"

    jq = procq.JoinableQueue()
    jq.put("task")
    p = ctx.Process(target=workers.task_done_after, args=(jq, 0.4))
    p.start()
    done, ticks = asyncio.run(while_ticking(jq.join_async()))
    p.join(30)
    assert p.exitcode == 0
    assert done is True and ticks >= 8, ticks
    assert jq.unfinished_tasks == 0


def test_async_timeouts_raise_empty_and_full():
    async def main():
        q = procq.Queue(1)
        t = time.monotonic()
        with pytest.raises(queue.Empty):
            await q.get_async(timeout=0.1)
        assert time.monotonic() - t >= 0.09
        with pytest.raises(queue.Empty):
            await q.get_async(timeout=0)
        await q.put_async(1)
        with pytest.raises(queue.Full):
            await q.put_async(2, timeout=0.1)
        assert await q.get_async() == 1
        jq = procq.JoinableQueue()
        await jq.put_async("x")
        assert await jq.join_async(timeout=0.1) is False
        assert await jq.get_async() == "x"
        jq.task_done()
        assert await jq.join_async(timeout=5) is True

    asyncio.run(main())


def test_cancelled_get_async_calls_lose_nothing(ctx):
    n = 2000
    q = procq.Queue(4)
    p = ctx.Process(target=workers.produce_n, args=(q, n))
    p.start()

    async def main():
        got, cancelled, i = [], 0, 0
        deadline = time.monotonic() + 60
        while len(got) < n:
            assert time.monotonic() < deadline, f"stuck after {len(got)} items"
            i += 1
            try:
                got.append(await asyncio.wait_for(q.get_async(), (i * 37 % 1100) / 1e6))
            except asyncio.TimeoutError:
                cancelled += 1
        return got, cancelled

    got, cancelled = asyncio.run(main())
    p.join(30)
    assert p.exitcode == 0
    assert cancelled > 0, "no get was cancelled: the test tested nothing"
    assert got == list(range(n)), "lost, duplicated or reordered"
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_a_cancelled_task_leaves_the_item_for_the_next_get(ctx):
    q = procq.Queue()

    async def main():
        task = asyncio.ensure_future(q.get_async())
        await asyncio.sleep(0.1)  # the get is pending now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.put("kept")
        return await q.get_async(timeout=5)

    assert asyncio.run(main()) == "kept"


def test_shutdown_by_another_process_ends_a_pending_get_async(ctx):
    q = procq.Queue()
    p = ctx.Process(target=workers.shutdown_after, args=(q, 0.3))
    p.start()

    async def main():
        with pytest.raises(procq.ShutDown):
            await q.get_async()
        with pytest.raises(procq.ShutDown):
            await q.put_async(1)

    asyncio.run(main())
    p.join(30)
    assert p.exitcode == 0
