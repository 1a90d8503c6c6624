"""The status bar's host workload indicator: what a running lab workload writes to, how fast, its errors, Stop.

A workload started from the Lab menu kept writing, invisibly, after its dialog
closed: after a role change its writes to a now-secondary volume failed without a
word. This widget shows it while it runs (target volumes, the rate asked for and the
rate measured, bytes written), its write errors with the reason the console can see
(a target that hosts may no longer write), and a Stop button.

It asks ``workload()`` once a second and on the engine's "workload" events; the
fleet answers one dict per array (each with ``running``).
"""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from core.units import format_size
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.elided import ElidedLabel
from gui.messages import error_handler

POLL_MS = 1000
ERRORS_RECENT_S = 10  # write errors newer than this make the indicator red


def workloads(answer) -> list[dict]:
    """The running workloads in ``workload()``'s answer ({array: dict})."""
    if not answer:
        return []
    return [w for w in answer.values() if isinstance(w, dict) and w.get("running", True) and w.get("volumes")]


class WorkloadIndicator(QWidget):
    """Hidden while no workload runs; else a line of text and a Stop button."""

    sig_changed = Signal(str)
    """The indicator's text ('' when no workload runs)."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge, self.state = bridge, state
        self.text = ElidedLabel("", objectName="workloadText")
        self.stop = QPushButton("Stop workload", objectName="workloadStop")
        self.stop.setToolTip("Stop the lab's host workload")
        self.stop.clicked.connect(self.stop_workload)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.text)
        lay.addWidget(self.stop)
        self.setVisible(False)
        self.running: list[dict] = []
        self._last: tuple[float, int] | None = None  # (monotonic time, bytes written) of the previous answer
        self._measured: float | None = None
        self._errors: tuple[int, float] = (0, 0.0)  # the workload's error count and when it last grew
        self._in_flight = False
        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.refresh)
        bridge.sig_ready.connect(self.refresh)
        bridge.sig_ready.connect(self.timer.start)
        bridge.sig_engine_event.connect(self._on_event)
        bridge.sig_stopped.connect(self.timer.stop)

    def _on_event(self, ev) -> None:
        if ev.kind == "workload":
            self.refresh()

    def refresh(self) -> None:
        if self._in_flight:
            return
        self._in_flight = True
        self.bridge.call("workload", on_done=self._show, on_error=self._unknown)

    def _unknown(self, _err) -> None:
        self._in_flight = False

    def _show(self, answer) -> None:
        self._in_flight = False
        self.running = workloads(answer)
        if not self.running:
            self._last = self._measured = None
            self._errors = (0, 0.0)
            self._set("")
            return
        written = sum(int(w.get("bytesWritten") or 0) for w in self.running)
        now = time.monotonic()
        if self._last is not None and now > self._last[0] and written >= self._last[1]:
            self._measured = (written - self._last[1]) / (now - self._last[0])
        self._last = (now, written)
        volumes = [v for w in self.running for v in w.get("volumes") or ()]
        asked = sum(float(w.get("rateMib") or 0) for w in self.running)
        pattern = ", ".join(sorted({str(w.get("pattern") or "") for w in self.running} - {""}))
        # The status bar is narrow: several targets are counted here and listed in the tooltip.
        targets = ", ".join(volumes) if len(volumes) <= 1 else f"{len(volumes)} volumes"
        text = f"Host workload: {asked:g} MiB/s {pattern} \u2192 {targets}"
        if self._measured is not None:
            text += f" \u00b7 {format_size(self._measured)}/s"
        text += f" \u00b7 {format_size(written)} written"
        errors = sum(int(w.get("errors") or 0) for w in self.running)
        if errors > self._errors[0]:
            self._errors = (errors, now)
        failing = bool(errors) and now - self._errors[1] < ERRORS_RECENT_S
        if failing:
            refused = self._refusing(volumes)
            text += f" \u2014 {errors} write error(s)" + (f": {refused}" if refused else "")
        elif errors:  # the count is since the start: say the writes succeed again, in plain colour
            text += f" \u00b7 {errors} write error(s) earlier"
        tip = text + (f"\nTargets: {', '.join(volumes)}" if len(volumes) > 1 else "") + \
            (f"\nNo write failed in the last {ERRORS_RECENT_S} s." if errors and not failing else "")
        self._set(text, error=failing, tooltip=tip)

    def _refusing(self, refs: list[str]) -> str:
        """Why hosts cannot write some targets, as the console's snapshots show it."""
        out = []
        for ref in refs:
            a, _, name = ref.partition("/")
            v = next((x for x in self.state.volumes if x.array == a and x.name == name), None)
            if v is None or v.host_writable:
                continue
            why = "failed" if v.failed else (f"secondary of group {v.mirror_group}" if v.role == "secondary"
                                             else "not writable by hosts")
            out.append(f"{ref} refuses host writes ({why})")
        return "; ".join(out)

    def _set(self, text: str, error: bool = False, tooltip: str | None = None) -> None:
        self.text.setText(text)
        self.text.setToolTip(text if tooltip is None else tooltip)
        self.text.setStyleSheet("color:#b3261e; font-weight:bold" if error else "")
        self.setVisible(bool(text))
        self.stop.setEnabled(bool(text))
        self.sig_changed.emit(text)

    def stop_workload(self) -> None:
        self.stop.setEnabled(False)
        self.bridge.call("stop_workload", on_done=lambda _r: self.refresh(),
                         on_error=error_handler(self, "Stop host workload"))
