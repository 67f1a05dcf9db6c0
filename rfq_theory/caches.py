"""One switch for every memo cache of the package.

Modules that memoise (coefficients, activations and quantizers by spec,
per-model layer tables) register their cache's ``clear`` function here when
they are imported; :func:`clear_caches` empties them all, for example to time
a cold call or to free memory after a large sweep.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["clear_caches", "register_cache"]

_CLEARERS: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> Callable[[], None]:
    """Register the ``clear`` function of a cache; returns it unchanged."""
    _CLEARERS.append(clear)
    return clear


def clear_caches() -> None:
    """Empty every cache of rfq_theory (results are recomputed on the next call)."""
    for clear in _CLEARERS:
        clear()
