"""What a sub-run reports: tried / survived / lost, and a line per failure."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Outcome:
    """``lost``: an acknowledged host write missing after recovery, or a secondary image
    that is neither the old nor the new recovery point (a mix). ``survived``: handled
    as designed (for inputs: refused in one line with a code; for faults: recovered by
    itself or by the documented action, nothing lost). Anything else is a failure:
    not lost, but not survived either (stuck, a traceback, a wrong answer)."""

    run: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"{self.run:<9} tried {self.tried:>4}  survived {self.survived:>4}  lost {self.lost:>2}  "
                f"({self.seconds:.0f} s)")
