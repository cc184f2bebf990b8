"""The adaptive batcher on a real event loop and a real worker thread."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from mlserving.server.batching import AdaptiveBatcher


class RecordingModel:
    """A real (if tiny) model: row sums, taking ``cost_s`` per call like a forest would.

    ``meet``: the first ``meet`` calls wait for each other (a barrier), so they only return if
    they run at the same time."""

    def __init__(self, cost_s: float = 0.005, fail: bool = False, meet: int = 0):
        self.cost_s = cost_s
        self.fail = fail
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.barrier = threading.Barrier(meet, timeout=30) if meet else None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(len(X))
        self.threads.add(threading.current_thread().name)
        if self.barrier is not None and len(self.calls) <= self.barrier.parties:
            self.barrier.wait()  # BrokenBarrierError if the calls did not overlap
        time.sleep(self.cost_s)
        if self.fail:
            raise RuntimeError("model exploded")
        return np.stack([X.sum(axis=1), -X.sum(axis=1)], axis=1)


def run_concurrently(batcher, inputs):
    async def main():
        return await asyncio.gather(*(batcher.submit(x) for x in inputs))
    return asyncio.run(main())


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(1, thread_name_prefix="model")
    yield pool
    pool.shutdown()


def test_concurrent_requests_share_calls_and_get_their_own_rows(executor):
    model = RecordingModel()
    batcher = AdaptiveBatcher(model, executor, max_batch_size=8)
    inputs = [np.full((1, 3), float(i)) for i in range(40)]
    results = run_concurrently(batcher, inputs)
    for i, result in enumerate(results):
        assert result.shape == (1, 2) and result[0, 0] == 3.0 * i
    assert sum(model.calls) == 40
    assert len(model.calls) < 40 and max(model.calls) <= 8
    assert model.threads == {"model_0"}


def test_first_request_goes_alone_when_the_model_is_idle(executor):
    model = RecordingModel()
    batcher = AdaptiveBatcher(model, executor, max_batch_size=64, max_batch_time_s=0)
    run_concurrently(batcher, [np.ones((1, 2)) for _ in range(10)])
    # No waiting: the first request is dispatched at once; the rest queue while it runs.
    assert model.calls == [1, 9]


def test_max_batch_time_collects_requests_before_the_first_call(executor):
    model = RecordingModel(cost_s=0.0)
    # A generous window: the second request (10 ms later) must land in it even on a busy machine.
    batcher = AdaptiveBatcher(model, executor, max_batch_size=64, max_batch_time_s=0.5)

    async def main():
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        return await asyncio.gather(first, second)

    asyncio.run(main())
    assert model.calls == [2]


def test_full_batch_does_not_wait_for_the_timer(executor):
    model = RecordingModel(cost_s=0.0)
    batcher = AdaptiveBatcher(model, executor, max_batch_size=4, max_batch_time_s=120.0)
    start = time.perf_counter()
    run_concurrently(batcher, [np.ones((2, 2)), np.ones((2, 2))])
    assert time.perf_counter() - start < 60 and model.calls == [4]  # far below the 120 s timer


def test_a_request_larger_than_the_batch_is_not_split(executor):
    model = RecordingModel(cost_s=0.0)
    batcher = AdaptiveBatcher(model, executor, max_batch_size=4)
    (result,) = run_concurrently(batcher, [np.arange(30.0).reshape(10, 3)])
    assert model.calls == [10] and result.shape == (10, 2)


def test_model_error_reaches_every_request_of_the_batch(executor):
    batcher = AdaptiveBatcher(RecordingModel(fail=True), executor, max_batch_size=8)

    async def main():
        return await asyncio.gather(*(batcher.submit(np.ones((1, 2))) for _ in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def test_two_workers_run_two_batches_at_once():
    model = RecordingModel(cost_s=0.05, meet=2)  # the first two calls must run at the same time
    with ThreadPoolExecutor(2, thread_name_prefix="model") as pool:
        batcher = AdaptiveBatcher(model, pool, max_batch_size=2, max_in_flight=2)
        run_concurrently(batcher, [np.ones((1, 2)) for _ in range(4)])
    assert sorted(model.calls) == [1, 1, 2] and len(model.threads) == 2
    assert not model.barrier.broken


def test_rejects_nonsense_settings(executor):
    with pytest.raises(ValueError, match="max_batch_size"):
        AdaptiveBatcher(RecordingModel(), executor, max_batch_size=0)
