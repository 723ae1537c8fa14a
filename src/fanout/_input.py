"""The input of a run, pulled lazily: only as many items as the workers ask for.

A plain iterable is pulled without awaiting (``take_now``, the hot path); an
async iterable is awaited under a lock (``take``), so two workers never step it
at once. ``peek`` looks at the first item without losing it (an executor may
refuse it before anything runs).
"""

from __future__ import annotations

import asyncio
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
        self._lock = asyncio.Lock() if self.is_async else None
        self._first: list[Any] = []
        #: items taken so far
        self.taken = 0
        #: the iterable has no more items
        self.exhausted = False

    @property
    def total(self) -> int | None:
        """How many items the input holds, once known."""
        if self.length is not None:
            return self.length
        return self.taken if self.exhausted else None

    async def peek(self) -> tuple[Any] | tuple[()]:
        """The first item, if any, left in place to be taken first."""
        if self._lock is None:
            first = list(islice(self._iter, 1))
            if first:
                self._iter = chain(first, self._iter)
        else:
            first = []
            async with self._lock:
                if not self._first and not self.exhausted:
                    try:
                        self._first.append(await self._iter.__anext__())
                    except StopAsyncIteration:
                        self.exhausted = True
                first = self._first[:1]
        return (first[0],) if first else ()

    def take_now(self, n: int) -> tuple[int, list[Any]] | None:
        """(index of the first, up to ``n`` items) of a plain iterable (fewer at its
        end); None for an async iterable (use ``take``) or when none are left."""
        if self._lock is not None or self.exhausted:
            return None
        items = list(islice(self._iter, n))
        if len(items) < n:
            self.exhausted = True
        first = self.taken
        self.taken += len(items)
        return (first, items) if items else None

    async def take(self, n: int) -> tuple[int, list[Any]]:
        """(index of the first, up to ``n`` items) of an async iterable; fewer once
        it is exhausted. Concurrent takes get consecutive, disjoint runs."""
        assert self._lock is not None
        async with self._lock:
            items, self._first = self._first[:n], self._first[n:]
            while len(items) < n and not self.exhausted:
                try:
                    items.append(await self._iter.__anext__())
                except StopAsyncIteration:
                    self.exhausted = True
            first = self.taken
            self.taken += len(items)
        return first, items
