"""How the lab link is shaped: a bandwidth limit (token bucket) and a latency, as people type them.

The relay applies both per chunk of bytes it forwards. A bucket serves one direction
of one route; changing its rate takes effect within :data:`MAX_WAIT` even for a
sender already waiting, so ``lab link set`` acts on open connections at once.
"""
from __future__ import annotations

import re
import time

from core.errors import InvalidInput
from core.units import KiB, format_size, parse_size

MAX_WAIT = 0.05  # seconds a throttled sender sleeps before looking at the rate again
BURST_SECONDS = 0.05  # a bucket holds this much of its rate: smooth, yet cheap on the loop
MIN_BURST = 16 * KiB
MAX_CHUNK = 256 * KiB
MAX_LATENCY = 60.0  # beyond this every channel time-out fires: that is a cut, not a slow link


class TokenBucket:
    """Bytes per second for one direction of a route; ``rate=None`` means unlimited.

    A reader asks :meth:`wait` before reading and gives :meth:`debit` what it read;
    the bucket may go into debt by one chunk and the next read waits the debt off. So a
    chunk is never split, and the long run rate is the configured one.
    """

    def __init__(self, rate: int | None = None):
        self._rate = rate
        self._tokens = float(self._burst())
        self._stamp = time.monotonic()

    @property
    def rate(self) -> int | None:
        return self._rate

    def set_rate(self, rate: int | None) -> None:
        self._refill()
        self._rate = rate
        self._tokens = min(self._tokens, float(self._burst()))

    def chunk_size(self) -> int:
        """How much to read at once: small enough that a slow link stays smooth."""
        if self._rate is None:
            return MAX_CHUNK
        return max(4 * KiB, min(MAX_CHUNK, self._rate // 50))

    def wait(self) -> float:
        """Seconds before the next read may go (0: now); at most :data:`MAX_WAIT`, then ask again."""
        if self._rate is None:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 0 else min(-self._tokens / self._rate, MAX_WAIT)

    def debit(self, n: int) -> None:
        if self._rate is not None:
            self._refill()
            self._tokens -= n

    def _burst(self) -> int:
        return MIN_BURST if self._rate is None else max(MIN_BURST, int(self._rate * BURST_SECONDS))

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate is not None:
            self._tokens = min(float(self._burst()), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now


def check_bandwidth(value: int | None) -> int | None:
    """A limit in bytes/s: more than 0, or None for none (a 0 limit would be a cut that hangs)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"bandwidth must be more than 0 bytes per second (got {value!r}); give e.g. 20MiB, "
                           "'none' to remove the limit, or use 'lab link cut'", code="invalidBandwidth")
    return value


def check_latency(value: float) -> float:
    """A one-way delay in seconds, 0 to :data:`MAX_LATENCY`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_LATENCY:
        raise InvalidInput(f"latency must be 0 to {MAX_LATENCY:g} s (got {value!r}); give e.g. 30ms or 0",
                           code="invalidLatency")
    return float(value)


def parse_bandwidth(text: str) -> int | None:
    """``20MiB`` (per second; a trailing ``/s`` is fine) -> bytes/s; ``none`` -> None."""
    text = text.strip()
    if text.lower() in ("none", "unlimited"):
        return None
    if text.lower().endswith("/s"):
        text = text[:-2]
    return check_bandwidth(parse_size(text, "bandwidth"))


_LATENCY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$", re.IGNORECASE)
_LATENCY_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_latency(text: str) -> float:
    """``30ms``, ``0.2s``, ``500us`` or ``0`` -> seconds; a bare non-zero number is refused (ms or s?)."""
    m = _LATENCY.match(text)
    if not m:
        raise InvalidInput(f"latency '{text}' is not a duration; write e.g. 30ms, 0.2s or 0", code="invalidLatency")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    if not unit and number != 0:
        raise InvalidInput(f"latency '{text}' needs a unit; write {m.group(1)}ms or {m.group(1)}s",
                           code="invalidLatency")
    return check_latency(number * _LATENCY_UNITS.get(unit, 1.0))


def describe(bandwidth: int | None, latency: float) -> str:
    """``20.00 MiB/s, 30 ms`` as ``lab link`` and ``lab status`` print it."""
    bw = "unlimited bandwidth" if bandwidth is None else f"{format_size(bandwidth)}/s"
    return f"{bw}, latency {latency * 1000:g} ms"
