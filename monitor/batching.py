"""Many awaited calls answered by a few: writes grouped into transactions, reads into statements.

The service's database work runs on one thread; these keep it from being asked once per feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Runs `write` on everything added while the previous write ran (group commit): a busy stretch makes a
    few large transactions, a quiet one waits for nothing. `add` gives each item's result as a future; a
    failed write fails the futures of its batch, and the next batch is tried as usual. With `most`, `room`
    waits while that many items are pending."""

    def __init__(self, write: Callable[[list[T]], Awaitable[Sequence[R]]], most: int | None = None) -> None:
        self.write, self.most = write, most
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.wakeup, self.taken = asyncio.Event(), asyncio.Event()
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def add(self, item: T) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        self.wakeup.set()
        return future

    async def room(self) -> None:
        while self.most is not None and len(self.pending) >= self.most and not self.task.done():
            self.taken.clear()
            await self.taken.wait()

    async def close(self) -> None:
        """Returns once everything added is written (or failed)."""
        self.closed = True
        self.wakeup.set()
        await self.task

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.pending = self.pending, []
            self.taken.set()
            if batch:
                try:
                    results = await self.write([item for item, _ in batch])
                except Exception as error:  # the callers see it; the next batch is tried as usual
                    for _, future in batch:
                        future.set_exception(error)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        future.set_result(result)
            if self.closed and not self.pending:
                return


class Batched(Generic[T, R]):
    """Calls answered together: `read` takes a list of arguments and returns the answers in order. The calls
    of one turn of the event loop go as one, and while one read runs, every call that comes meanwhile waits
    for the next (as `GroupCommit` does for writes)."""

    def __init__(self, read: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._call = read
        self._asked: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def read(self, argument: T) -> R:
        loop = asyncio.get_running_loop()
        if not self._asked and not self._running:
            loop.call_soon(lambda: loop.create_task(self._run()))
        future: asyncio.Future[R] = loop.create_future()
        self._asked.append((argument, future))
        return await future

    async def _run(self) -> None:
        self._running = True
        try:
            while self._asked:
                asked, self._asked = self._asked, []
                try:
                    answers = await self._call([argument for argument, _ in asked])
                except Exception as error:
                    for _, future in asked:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), answer in zip(asked, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._running = False
