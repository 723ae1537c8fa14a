"""Which injected fault a request gets, drawn from the seed, the request's id and how many
times that id has been seen: the same run gets the same faults, whatever the concurrency
and arrival order of its requests."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from fanout.mock._config import MockConfig

Fault = Literal["throttle", "unavailable", "error", "reset"]

_SCALE = 2.0**64


class FaultDraw:
    """The shares of ``config``'s faults as consecutive ranges of one uniform draw, in the
    order throttle (429), unavailable (503), error (500), reset; when the shares add up to
    more than 1, the later ones get what is left."""

    def __init__(self, config: MockConfig) -> None:
        self.seed = config.seed if config.seed is not None else secrets.randbits(64)
        bounds: list[tuple[float, Fault]] = []
        total = 0.0
        shares: tuple[tuple[Fault, float], ...] = (
            ("throttle", config.throttle_rate),
            ("unavailable", config.unavailable_rate),
            ("error", config.error_rate),
            ("reset", config.reset_rate),
        )
        for fault, share in shares:
            if share > 0 and total < 1.0:
                total = min(1.0, total + share)
                bounds.append((total, fault))
        self.bounds = tuple(bounds)
        self.active = bool(bounds) or config.jitter > 0

    def draw(self, key: str, attempt: int) -> tuple[Fault | None, float]:
        """The fault of the ``attempt``-th request (from 1) of id ``key``, and a uniform
        number in [-1, 1) for its latency jitter."""
        digest = hashlib.blake2b(
            f"{self.seed}\0{attempt}\0{key}".encode(errors="surrogatepass"), digest_size=16
        ).digest()
        share = int.from_bytes(digest[:8], "little") / _SCALE
        spread = 2.0 * int.from_bytes(digest[8:], "little") / _SCALE - 1.0
        for bound, fault in self.bounds:
            if share < bound:
                return fault, spread
        return None, spread
