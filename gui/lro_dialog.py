"""Long Running Operations: a non-modal panel (docked by the main window) with a history.

Running operations come from the engine's ``long_running_operations()`` (it also knows
transfers that wait for a lost link); their figures are taken from the same live
snapshots the tree shows, so the two never disagree on a percentage. An operation that
leaves the engine's list moves to "Finished" with its outcome from ``sync_history``
(committed, failed, interrupted), so an administrator who looks later still sees it.
Role changes come from the groups' statuses (pending / in progress) and end with the
roles they left.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHeaderView, QLabel, QSplitter, QTableWidgetItem, QVBoxLayout, QWidget

from core.units import format_size
from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.details_panel import _row, _table

HEADERS = ["Group", "Pair", "Operation", "Done", "Total", "Rate", "ETA", "Progress"]
HISTORY_HEADERS = ["Finished", "Group", "Pair", "Operation", "Outcome", "Data", "Duration"]
ROLE_CHANGING = {"role_change_pending": "pending", "role_change_in_progress": "in progress"}
MAX_HISTORY = 500
VISIBLE_MS, HIDDEN_MS = 500, 1000  # hidden, it still watches: what finishes meanwhile goes to the history


@dataclass
class Operation:
    """One operation as first seen; ``done``/``total`` are its last known figures."""

    key: tuple
    group: str
    array: str
    pair: str
    kind: str
    first_seen: float = field(default_factory=time.time)
    done: int = 0
    total: int = 0


class LongRunningOperationsPanel(QWidget):
    """Operations in progress above, finished ones (newest first) below."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, parent=None):
        super().__init__(parent)
        self.bridge, self.state = bridge, state
        self.table = _table(HEADERS)
        self.table.setObjectName("lroTable")
        self.history = _table(HISTORY_HEADERS)
        self.history.setObjectName("lroHistoryTable")
        for t in (self.table, self.history):
            t.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.hint = QLabel("", objectName="hint")
        self.history_hint = QLabel("Finished operations appear here with their outcome.", objectName="hint")
        running = QWidget()
        rl = QVBoxLayout(running)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.hint)
        rl.addWidget(self.table, 1)
        finished = QWidget()
        fl = QVBoxLayout(finished)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(QLabel("<b>Finished</b>"))
        fl.addWidget(self.history, 1)
        fl.addWidget(self.history_hint)
        split = QSplitter(Qt.Vertical, objectName="lroSplit")
        split.addWidget(running)
        split.addWidget(finished)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self.running: dict[tuple, Operation] = {}
        self.finished: list[tuple] = []  # rows of the history table, newest first
        self._role_changes: dict[str, Operation] = {}
        self._in_flight = False
        self._shown = False
        self.timer = QTimer(self, interval=HIDDEN_MS)
        self.timer.timeout.connect(self.refresh)
        bridge.sig_ready.connect(self.timer.start)
        bridge.sig_ready.connect(self.refresh)
        state.sig_groups_changed.connect(self._on_groups)
        self._fill([])

    def set_shown(self, shown: bool) -> None:
        """Whether the panel is in view. The main window tells it from its dock: a dock's tab behind
        another stays "visible" to Qt (moved out of sight), and filling it there cost the UI thread for nothing."""
        self._shown = shown
        self.timer.setInterval(VISIBLE_MS if shown else HIDDEN_MS)
        if shown and self.bridge.ready:
            self.refresh()

    def showEvent(self, e):
        super().showEvent(e)
        self.set_shown(True)

    def hideEvent(self, e):
        self.set_shown(False)
        super().hideEvent(e)

    # -- running operations ---------------------------------------------------------------
    def refresh(self) -> None:
        if self._in_flight:
            return
        self._in_flight = True
        self.bridge.call("long_running_operations", on_done=self._from_engine, on_error=self._from_snapshots)

    def _from_engine(self, ops) -> None:
        """``long_running_operations()`` dicts: group, array, pair (ARRAY/VOL), kind, bytesDone/Total, running."""
        self._in_flight = False
        seen, rows = set(), []
        for o in ops:
            group, array, ref = str(o.get("group", "")), str(o.get("array", "")), str(o.get("pair") or "")
            kind = str(o.get("kind", ""))
            op = self._track((group, array, ref, kind), group, array, ref, kind)
            seen.add(op.key)
            _, _, volume = ref.partition("/")
            live = self.state.pair(array or ref.partition("/")[0], volume) if volume else None
            prog = live.progress if live is not None else None
            # The tree's figures when the snapshot has them: both views show one percentage.
            done = prog.bytes_done if prog else int(o.get("bytesDone") or 0)
            total = prog.bytes_total if prog else int(o.get("bytesTotal") or 0)
            op.done, op.total = done, total
            pair = f"{live.primary_ref} \u2192 {live.secondary_ref}" if live is not None else (ref or "(all pairs)")
            label = f"{kind.capitalize()} synchronization"
            if not o.get("running", True):
                label += " (waiting)"
            pct = prog.percent if prog else (100.0 * done / total if total else 0.0)
            rows.append((group, pair, label, format_size(done), format_size(total),
                         fmt.rate(prog.rate if prog else None), fmt.eta(prog.eta_seconds if prog else None), pct))
        self._retire([k for k in self.running if k not in seen])
        if self._shown:  # out of view, it only watches for what finishes; in view again, it refreshes at once
            self._fill(rows + self._role_rows())

    def _from_snapshots(self, _err) -> None:
        """An engine without ``long_running_operations``: what the polled snapshots show as synchronizing."""
        self._in_flight = False
        seen, rows = set(), []
        for g in self.state.groups:
            if g.role != "primary":
                continue
            for p in g.pairs:
                prog = p.progress
                if prog is None:
                    continue
                ref = f"{p.array}/{p.local_volume}"
                op = self._track((g.name, g.array, ref, prog.kind), g.name, g.array, ref, prog.kind)
                op.done, op.total = prog.bytes_done, prog.bytes_total
                seen.add(op.key)
                rows.append((g.name, f"{p.primary_ref} \u2192 {p.secondary_ref}",
                             f"{prog.kind.capitalize()} synchronization", format_size(prog.bytes_done),
                             format_size(prog.bytes_total), fmt.rate(prog.rate), fmt.eta(prog.eta_seconds),
                             prog.percent))
        self._retire([k for k in self.running if k not in seen])
        if self._shown:  # out of view, it only watches for what finishes; in view again, it refreshes at once
            self._fill(rows + self._role_rows())

    def _track(self, key, group, array, ref, kind) -> Operation:
        op = self.running.get(key)
        if op is None:
            op = self.running[key] = Operation(key, group, array, ref, kind)
        return op

    # -- role changes (from the groups' statuses) --------------------------------------------
    def _on_groups(self, groups) -> None:
        changing = {g.name: g for g in groups if g.status in ROLE_CHANGING}
        for name, g in changing.items():
            if name not in self._role_changes:
                self._role_changes[name] = Operation(("role", name), name, g.array, "(all pairs)", "role change")
        for name in [n for n in self._role_changes if n not in changing]:
            op = self._role_changes.pop(name)
            primary = next((g.array for g in groups if g.name == name and g.role == "primary"), None)
            outcome = f"roles changed: {primary} is primary" if primary else "ended (no primary side now)"
            self._add_history([self._history_row(op, outcome, "\u2014")])

    def _role_rows(self) -> list[tuple]:
        rows = []
        for name, op in self._role_changes.items():
            g = next((x for x in self.state.groups if x.name == name and x.status in ROLE_CHANGING), None)
            stage = ROLE_CHANGING.get(g.status, "") if g else ""
            rows.append((name, "(all pairs)", f"Role change ({stage})", "\u2014", "\u2014", "\u2014", "\u2014", None))
        return rows

    # -- history ------------------------------------------------------------------------------
    def _retire(self, keys) -> None:
        """Operations that left the engine's list: ask the group's history how each ended."""
        ops = [self.running.pop(k) for k in keys]
        for group in sorted({op.group for op in ops}):
            mine = [op for op in ops if op.group == group]
            self.bridge.call("sync_history", group, limit=5,
                             on_done=lambda h, m=mine: self._outcomes(m, h),
                             on_error=lambda _e, m=mine: self._add_history(
                                 [self._history_row(op, "ended (the group is gone)", format_size(op.done))
                                  for op in m]))

    def _outcomes(self, ops, history) -> None:
        rows = []
        for op in ops:
            # The record of this operation: the newest that ended after it was first seen.
            row = next((h for h in reversed(list(history)) if h.ended.timestamp() >= op.first_seen - 1), None)
            if row is None:
                rows.append(self._history_row(op, "ended (no record: the pair was removed?)", format_size(op.done)))
            else:
                # The history row is the group's; this pair's share is its own figures (all of them when
                # committed: the pair received everything it had to).
                data = op.total if row.outcome == "committed" and op.total else op.done
                rows.append(self._history_row(op, row.outcome.capitalize(), format_size(data),
                                              duration=row.duration_seconds, ended=row.ended))
        self._add_history(rows)

    def _history_row(self, op: Operation, outcome: str, data: str, duration: float | None = None,
                     ended=None) -> tuple:
        label = "Role change" if op.kind == "role change" else f"{op.kind.capitalize()} synchronization"
        live = None
        _, _, volume = op.pair.partition("/")
        if volume:
            live = self.state.pair(op.pair.partition("/")[0], volume)
        pair = f"{live.primary_ref} \u2192 {live.secondary_ref}" if live is not None else op.pair
        when = fmt.timestamp(ended) if ended is not None else fmt.timestamp(fmt.now_utc())
        return (when, op.group, pair, label, outcome, data, fmt.age(duration) if duration is not None else "\u2014")

    def _add_history(self, rows: list[tuple]) -> None:
        """Put finished operations at the top of the history, the last of ``rows`` first (newest first).

        Rows are inserted, never rewritten: with 64 pairs syncing every minute the history is
        full (500 rows), and filling it again per finished operation held the UI thread for
        up to half a second when a batch of syncs ended (bench/gui_responsiveness.py).
        """
        if not rows:
            return
        t = self.history
        for cells in rows:
            self.finished.insert(0, cells)
            t.insertRow(0)
            for c, text in enumerate(cells):
                t.setItem(0, c, QTableWidgetItem(text))
            t.item(0, 4).setToolTip(cells[4])
        del self.finished[MAX_HISTORY:]
        if t.rowCount() > MAX_HISTORY:
            t.setRowCount(MAX_HISTORY)  # the oldest go
        if len(self.finished) - len(rows) <= 50:
            t.resizeColumnsToContents()
        self.history_hint.setText(f"{len(self.finished)} finished operation(s) since the console started")

    def _fill(self, rows) -> None:
        """rows: (group, pair, operation, done, total, rate, ETA, percent or None)."""
        grew = self.table.rowCount() != len(rows)
        self.table.setRowCount(len(rows))
        for r, (group, pair, kind, done, total, rate, eta, pct) in enumerate(rows):
            _row(self.table, r, [group, pair, kind, done, total, rate, eta, None], pct)
        self.hint.setText(f"{len(rows)} operation(s) running" if rows else "No long running operations")
        if grew:
            self.table.resizeColumnsToContents()
            self.table.setColumnWidth(7, max(self.table.columnWidth(7), 120))
