"""The input of a run, pulled lazily: only as many items as the workers ask for.

A plain iterable is pulled without awaiting (``take_now``, the hot path). An
async iterable is stepped by one pump task, only while a worker waits for an
item; ``take(n)`` returns what has arrived — at least one item, at most ``n`` —
and never waits to fill a batch, so an item from a slow source (a pipe, a
queue fed as results come back) never waits for the next one. ``peek`` looks
at the first item without losing it (an executor may refuse it before anything
runs).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from itertools import chain, islice
from typing import Any


class Input:
    """Items of a sync or async iterable, taken in order, counted."""

    def __init__(self, items: Any) -> None:
        self.length: int | None = None
        with contextlib.suppress(TypeError):
            self.length = len(items)
        self.is_async = hasattr(items, "__aiter__")
        self._iter: Any = items.__aiter__() if self.is_async else iter(items)
        # async input: items pulled by the pump and not taken yet, and its state
        self._arrived: collections.deque[Any] = collections.deque()
        self._pump: asyncio.Task[None] | None = None
        self._wanted: asyncio.Future[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._error: BaseException | None = None
        #: items taken so far
        self.taken = 0
        #: the iterable has no more items (for an async one: none left to take either)
        self.exhausted = False

    @property
    def total(self) -> int | None:
        """How many items the input holds, once known."""
        if self.length is not None:
            return self.length
        return self.taken if self.exhausted else None

    async def peek(self) -> tuple[Any] | tuple[()]:
        """The first item, if any, left in place to be taken first."""
        if not self.is_async:
            first = list(islice(self._iter, 1))
            if first:
                self._iter = chain(first, self._iter)
            return (first[0],) if first else ()
        await self._arrival()
        return (self._arrived[0],) if self._arrived else ()

    def take_now(self, n: int) -> tuple[int, list[Any]] | None:
        """(index of the first, up to ``n`` items) of a plain iterable (fewer at its
        end); None for an async iterable (use ``take``) or when none are left."""
        if self.is_async or self.exhausted:
            return None
        items = list(islice(self._iter, n))
        if len(items) < n:
            self.exhausted = True
        first = self.taken
        self.taken += len(items)
        return (first, items) if items else None

    async def take(self, n: int) -> tuple[int, list[Any]]:
        """(index of the first, 1 to ``n`` items) of an async iterable, as soon as
        one has arrived; no items once it is exhausted. Concurrent takes get
        consecutive, disjoint runs."""
        await self._arrival()
        arrived = self._arrived
        items = [arrived.popleft() for _ in range(min(n, len(arrived)))]
        first = self.taken
        self.taken += len(items)
        if not arrived and self._ended():
            self.exhausted = True
        return first, items

    async def aclose(self) -> None:
        """Stop the pump (the run is over)."""
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _ended(self) -> bool:
        return self._pump is not None and self._pump.done()

    async def _arrival(self) -> None:
        """Wait until an item has arrived, or the source has ended (raising its error)."""
        while not self._arrived and not self._ended():
            if self._pump is None:
                self._pump = asyncio.get_running_loop().create_task(self._run_pump())
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            if self._wanted is not None and not self._wanted.done():
                self._wanted.set_result(None)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        if not self._arrived and self._error is not None:
            raise self._error

    async def _run_pump(self) -> None:
        """Step the source while someone waits for an item."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self._waiters:
                    self._wanted = loop.create_future()
                    await self._wanted
                try:
                    item = await self._iter.__anext__()
                except StopAsyncIteration:
                    return
                self._arrived.append(item)
                self._wake(1)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the source broke: the run stops with its error
            self._error = exc
        finally:
            self._wake(len(self._waiters))

    def _wake(self, n: int) -> None:
        for waiter in self._waiters[:n]:
            if not waiter.done():
                waiter.set_result(None)
        del self._waiters[:n]
