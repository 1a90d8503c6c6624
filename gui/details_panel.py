"""Centre panel: properties of the selection, and tables of groups and pairs with progress bars."""
from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QElapsedTimer, QRect, Qt, QTimer
from PySide6.QtWidgets import (QApplication, QBoxLayout, QFormLayout, QGroupBox, QHeaderView, QLabel, QScrollArea,
                               QSizePolicy, QSplitter,
                               QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from core import iscsi_settings
from core.units import format_size
from gui import formatting as fmt
from gui.console_state import ConsoleState
from gui.selection import Selection
from gui.table_columns import ColumnFitter
from gui.theme import STALE_BRUSH, last_known, role_icon, stale_tip, status_icon_of, status_key, status_label

PROGRESS_ROLE = Qt.UserRole + 5
ICON_ROLE = Qt.UserRole + 6  # what a cell's icon stands for: the icon is set again only when that changes
ROW_ROLE = Qt.UserRole + 7  # on a row's first cell, what the row shows: a row that did not change is skipped
TABLES_MIN_HEIGHT = 280  # two titled tables with a header and three rows each
SIDE_BY_SIDE = 900  # px of the details panel from which State and Settings stand side by side
REFRESH_MS = 200  # the live values at most 5 times a second: what a person reads, and the poll's rate


class ProgressDelegate(QStyledItemDelegate):
    """Paints a progress bar in cells that carry a percentage (None: plain text)."""

    def paint(self, painter, option, index):
        pct = index.data(PROGRESS_ROLE)
        if pct is None:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(3, 3, -3, -3))
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(pct * 10)
        bar.text = f"{pct:.1f} %"
        bar.textVisible = True
        bar.state = option.state | QStyle.State_Enabled
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.CE_ProgressBar, bar, painter, widget)


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.NoEditTriggers)
    t.setSelectionBehavior(QTableWidget.SelectRows)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
    t.horizontalHeader().setStretchLastSection(True)
    t.setItemDelegate(ProgressDelegate(t))
    return t


# Progress right after Status: at the end it was scrolled out of sight in a 1280 px window.
GROUP_HEADERS = ["Group", "Array", "Role", "Status", "Progress", "Unsynced", "Mode", "Last recovery point"]
PAIR_HEADERS = ["Primary", "Secondary", "Group", "Status", "Progress", "Unsynced", "Rate", "ETA",
                "Reserved used (primary / secondary)"]


class DetailsPanel(QWidget):
    """Shows the selected object; refreshes from the console state's live snapshots."""

    def __init__(self, state: ConsoleState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._offline: set[str] = set()  # arrays that do not answer: what they show is their last known state
        self._statuses_fitted: dict = {}  # table -> the status texts its columns were sized for
        self.selection: Selection | None = None
        self.title = QLabel("Select an array, a group or a pair", objectName="sectionTitle")
        self.subtitle = QLabel("", objectName="hint")
        for label in (self.title, self.subtitle):  # a 30-character group name must not widen the window
            label.setWordWrap(True)
        self.left_box, self.right_box = QGroupBox("Settings"), QGroupBox("State")
        self.left_form, self.right_form = QFormLayout(self.left_box), QFormLayout(self.right_box)
        self._value_labels: dict[str, QLabel] = {}
        self._texts: dict[str, str] = {}  # what each of them shows
        for form in (self.left_form, self.right_form):
            form.setVerticalSpacing(3)
            form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.top = top = QWidget()
        # State above Settings, each the full width: side by side they left ~250 px per form in a
        # 1280 px window and cut "Synchronizing (initial sync)" (seen in the docs screenshot).
        self._boxes = boxes = QVBoxLayout(top)  # side by side from SIDE_BY_SIDE px (see resizeEvent)
        boxes.setContentsMargins(0, 0, 0, 0)
        boxes.addWidget(self.right_box)
        boxes.addWidget(self.left_box)
        boxes.addStretch(1)
        self.groups_table = _table(GROUP_HEADERS)
        self.pairs_table = _table(PAIR_HEADERS)
        # Columns fit the width (elided, whole in the tooltip) instead of scrolling sideways at 1600 px.
        self._fitters = {t: ColumnFitter(t, {4: 120}) for t in (self.groups_table, self.pairs_table)}
        tables = QWidget()
        tl = QVBoxLayout(tables)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel("<b>Mirror consistency groups</b>"))
        tl.addWidget(self.groups_table, 1)
        tl.addWidget(QLabel("<b>Mirrored pairs</b>"))
        tl.addWidget(self.pairs_table, 1)
        top_scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.NoFrame)
        top_scroll.setWidget(top)  # the tables keep room for their rows; the forms scroll if they must
        self.top_scroll = top_scroll
        self.split = split = QSplitter(Qt.Vertical)
        split.addWidget(top_scroll)
        split.addWidget(tables)
        split.setStretchFactor(1, 1)
        split.setSizes([190, 420])
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.subtitle)
        lay.addWidget(split, 1)
        # Snapshots change up to 5 times a second while pairs sync: the panel follows in a pass of the event
        # loop of its own (after the tree's), at most every REFRESH_MS; a new selection is shown at once.
        self._refresh_timer = QTimer(self, singleShot=True)
        self._refresh_timer.timeout.connect(self.refresh)
        self._refreshed = QElapsedTimer()
        for changed in (state.sig_groups_changed, state.sig_volumes_changed, state.sig_arrays_changed,
                        state.sig_drills_changed):
            changed.connect(self._changed)

    def set_selection(self, selection: Selection | None) -> None:
        self.selection = selection
        self.refresh()

    def _changed(self, *_) -> None:
        if not self._refresh_timer.isActive():
            since = self._refreshed.elapsed() if self._refreshed.isValid() else REFRESH_MS
            self._refresh_timer.start(max(0, REFRESH_MS - since))

    # -- content ----------------------------------------------------------------
    def refresh(self, *_):
        self._refresh_timer.stop()
        self._refreshed.start()
        sel = self.selection
        left, right = [], []
        self._offline = self.state.offline_arrays()
        groups = [g for g in self.state.groups]
        if sel is None:
            self.title.setText("All arrays")
            self.subtitle.setText("Select an array, a group or a pair in the tree")
        elif sel.kind == "array":
            a = next((x for x in self.state.arrays if x.name == sel.array), None)
            groups = [g for g in groups if g.array == sel.array]
            self.title.setText(f"Storage array {sel.array}")
            if a is not None:
                self.subtitle.setText(f"{a.model} \u2014 firmware {a.firmware} \u2014 WWN {a.wwn}")
                left = [("Model", a.model), ("Firmware", a.firmware),
                        ("Controllers", ", ".join(f"{c.label}: {c.status}" for c in a.controllers)),
                        ("Channels", ", ".join(sorted(t.upper() for t in a.channel_types)) or "none"),
                        ("Mirroring channel", a.channel_address or "embedded lab")]
                if a.iscsi is not None:  # what an iSCSI group's two arrays must share
                    left.append(("iSCSI settings", " \u00b7 ".join(
                        f"{name} {value}" for name, value in iscsi_settings.describe(a.iscsi).items())))
                right = [("Online", "yes" if a.online else "no")] + [
                    (f"Pool {p.name}", f"{format_size(p.free)} free of {format_size(p.capacity)} ({p.drive_type.upper()})")
                    for p in a.pools]
        elif sel.kind == "group":
            g = next((x for x in groups if x.name == sel.name and x.array == sel.array), None)
            groups = [x for x in groups if x.name == sel.name]
            self.title.setText(f"Mirror consistency group {sel.name}")
            if g is not None:
                self.subtitle.setText(f"{g.role.capitalize()} on {g.array}, mirrored with {g.remote_array}")
                left, right = _group_rows(g, g.array in self._offline)
                right += _reserved_rows(g, self.state.group(g.name, g.remote_array))
                right += _drill_rows(self.state.drill(g.name))
        elif sel.kind == "pair":
            p = self.state.pair(sel.array, sel.name)
            g = self.state.group(p.group, sel.array) if p else None
            groups = [x for x in groups if p is not None and x.name == p.group]
            self.title.setText(f"Mirrored pair {sel.array}/{sel.name}")
            if p is not None:
                self.subtitle.setText(f"{p.primary_ref} \u2192 {p.secondary_ref} in group {p.group}")
                left, right = _pair_rows(p, g, self.state.pair(p.remote_array, p.remote_volume),
                                         p.array in self._offline)
                right.append(("NBD export", self.state.nbd_uri(sel.array, p.local_volume) or "not served"))
        elif sel.kind == "volume":
            v = next((x for x in self.state.volumes if x.array == sel.array and x.name == sel.name), None)
            groups = [x for x in groups if v is not None and x.name == v.mirror_group and x.array == v.array]
            self.title.setText(f"Volume {sel.array}/{sel.name}")
            if v is not None:
                self.subtitle.setText(f"{format_size(v.capacity)} on pool {v.pool}")
                left = [("Capacity", format_size(v.capacity)), ("Drive type", v.drive_type.upper()),
                        ("RAID level", v.raid_level), ("Segment size", format_size(v.segment_size)),
                        ("Security", v.security), ("Drive Security", _yes(v.drive_security)),
                        ("Data Assurance", _yes(v.data_assurance)),
                        ("Resource Partitioning", _yes(v.resource_partitioning))]
                right = [("Status", last_known("Failed" if v.failed else "Optimal", v.array in self._offline)),
                         ("Owner (preferred / current)", f"{v.preferred_owner} / {v.current_owner}"),
                         ("Mirror group", v.mirror_group or "not mirrored"), ("Role", v.role or "\u2014"),
                         ("Host writable", _yes(v.host_writable)), ("NBD export", v.nbd_uri or "not served")]
        rebuilt = self._fill(self.left_form, left, "l") | self._fill(self.right_form, right, "r")
        self.left_box.setVisible(bool(left))
        self.right_box.setVisible(bool(right))
        self.top_scroll.setVisible(bool(left or right))  # nothing to show: the tables take the whole height
        if rebuilt:
            self._fit_top()
        self._fill_groups(groups)
        self._fill_pairs(groups)

    def _fit_top(self) -> None:
        """State and Settings get the height of their rows (less what the tables need): not a 4-line scroll area."""
        total = sum(self.split.sizes())
        if total <= 0 or not self.top_scroll.isVisible():
            return
        self.top.adjustSize()
        want = self.top.sizeHint().height() + 4
        top = min(want, max(total // 2, total - TABLES_MIN_HEIGHT))  # the tables keep three rows each
        self.split.setSizes([top, total - top])

    def resizeEvent(self, e):
        super().resizeEvent(e)
        # Wide enough, State and Settings sit side by side (about half the height); narrow, stacked, each
        # the full width (side by side in 1280 px they cut "Synchronizing (initial sync)").
        wide = self.width() >= SIDE_BY_SIDE
        direction = QBoxLayout.LeftToRight if wide else QBoxLayout.TopToBottom
        if self._boxes.direction() != direction:
            self._boxes.setDirection(direction)
            self._boxes.setStretch(0, 1 if wide else 0)
            self._boxes.setStretch(1, 1 if wide else 0)
            self._boxes.setStretch(2, 0 if wide else 1)
        self._fit_top()

    def _fill(self, form: QFormLayout, rows, side: str) -> bool:
        """Show ``rows`` in ``form``; True when its fields changed (not only their texts)."""
        keys = [f"{side}:{k}" for k, _ in rows]
        current = [k for k in self._value_labels if k.startswith(side + ":")]
        rebuilt = keys != current
        if rebuilt:  # new layout of fields: rebuild; otherwise only texts change
            while form.rowCount():
                form.removeRow(0)
            for k in current:
                del self._value_labels[k]
                self._texts.pop(k, None)
            for (label, _), key in zip(rows, keys):
                value = QLabel(textInteractionFlags=Qt.TextSelectableByMouse)
                # A long value (an NBD URI, a progress line) must not widen the whole window: it is cut
                # at the box's edge and shown whole in its tooltip.
                value.setWordWrap(True)
                value.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
                value.setMinimumWidth(60)
                self._value_labels[key] = value
                form.addRow(f"{label}:", value)
        for (_, text), key in zip(rows, keys):
            text = str(text)
            if self._texts.get(key) != text:  # remembered here: asking each label for its text costs more
                self._texts[key] = text
                self._value_labels[key].setText(text)
                self._value_labels[key].setToolTip(text)
        return rebuilt

    def _fill_groups(self, groups) -> None:
        t = self.groups_table
        grew = t.rowCount() != len(groups)
        t.setRowCount(len(groups))
        for r, g in enumerate(groups):
            mode = "Manual" if g.sync_mode == "manual" else f"Every {g.sync_interval_minutes} min"
            stale = g.array in self._offline
            cells = [g.name, g.array, g.role.capitalize(), last_known(status_label(g.status), stale), None,
                     format_size(g.unsynchronized_bytes), mode, fmt.timestamp(g.last_recovery_point)]
            _row(t, r, cells, g.progress.percent if g.progress else None, stale)
            _icon(t.item(r, 3), status_key(g.status, stale), status_icon_of)
            _icon(t.item(r, 2), g.role, role_icon)
        self._fit(t, grew)

    def _fill_pairs(self, groups) -> None:
        # One row per pair: both sides' snapshots name both volumes (the row shows both reserved capacities),
        # so the primary side's is listed, or the only side known; a group selected listed each pair twice.
        seen, pairs = set(), []
        for p in sorted((p for g in groups for p in g.pairs), key=lambda p: p.role != "primary"):
            if (p.primary_ref, p.secondary_ref) not in seen:
                seen.add((p.primary_ref, p.secondary_ref))
                pairs.append(p)
        t = self.pairs_table
        grew = t.rowCount() != len(pairs)
        t.setRowCount(len(pairs))
        for r, p in enumerate(pairs):
            partner = self.state.pair(p.remote_array, p.remote_volume)
            sides = (p, partner) if p.role == "primary" else (partner, p)
            used = " / ".join(f"{x.reserved_capacity.utilization_pct:.1f} %" if x is not None else "?" for x in sides)
            stale = p.array in self._offline
            cells = [p.primary_ref, p.secondary_ref, f"{p.group} ({p.array})", last_known(_pair_status(p), stale), None,
                     format_size(p.unsynchronized_bytes), fmt.rate(p.progress.rate if p.progress else None),
                     fmt.eta(p.progress.eta_seconds if p.progress else None), used]
            _row(t, r, cells, p.progress.percent if p.progress else None, stale)
            _icon(t.item(r, 3), status_key(p.status, stale), status_icon_of)
            tip = stale_tip(p.array) if stale else p.reason
            if t.item(r, 3).toolTip() != tip:
                t.item(r, 3).setToolTip(tip)
        self._fit(t, grew)

    def _fit(self, t: QTableWidget, grew: bool) -> None:
        """Size ``t``'s columns when rows came, or when the statuses shown changed.

        The Status column keeps its whole text: squeezed with the others, "Optimal (last
        known)" read "Optimal …", a current-looking status, and "Role conflict" read "Role …"
        (seen in the walk-through). Sizing scans every cell, so it is done only then (the
        fitter skips huge tables); the bar's cell is given its floor of 120 px.
        """
        statuses = frozenset(t.item(r, 3).text() for r in range(t.rowCount()) if t.item(r, 3) is not None)
        if not grew and statuses == self._statuses_fitted.get(t):
            return
        self._statuses_fitted[t] = statuses
        fitter = self._fitters[t]
        fitter.minimums[3] = t.sizeHintForColumn(3)
        fitter.fit()


def _row(t: QTableWidget, r: int, cells, pct, stale: bool = False) -> None:
    """Show ``cells`` in row ``r`` (None: the progress bar of ``pct``), greyed when ``stale``.

    A row shown as it is costs one lookup.
    """
    shown = (tuple(cells), pct, stale)
    first = t.item(r, 0)
    if first is not None and first.data(ROW_ROLE) == shown:
        return
    for c, text in enumerate(cells):
        item = t.item(r, c)
        if item is None:
            item = QTableWidgetItem()
            t.setItem(r, c, item)
        if text is None:
            if item.data(PROGRESS_ROLE) != pct:
                item.setData(PROGRESS_ROLE, pct)
            if item.text() != ("" if pct is not None else "\u2014"):
                item.setText("" if pct is not None else "\u2014")
        elif item.text() != text:
            item.setText(text)
        item.setData(Qt.ItemDataRole.ForegroundRole, STALE_BRUSH if stale else None)
    t.item(r, 0).setData(ROW_ROLE, shown)


def _icon(item: QTableWidgetItem, key: str, icon_for) -> None:
    """Give ``item`` the icon of ``key`` (a status, a role); setting the same icon again repaints and relayouts."""
    if item.data(ICON_ROLE) != key:
        item.setData(ICON_ROLE, key)
        item.setIcon(icon_for(key))


def _pair_status(p) -> str:
    """A pair's status; while it synchronizes, which kind (the pair status alone says "interval")."""
    if p.progress is not None and p.status == "synchronizing":
        return f"Synchronizing ({p.progress.kind} sync)"
    return status_label(p.status)


def _yes(v) -> str:
    return "\u2014" if v is None else ("yes" if v else "no")


def _group_rows(g, stale: bool = False):
    mode = "Manual" if g.sync_mode == "manual" else f"Scheduled, every {g.sync_interval_minutes} min"
    left = [("Channel", g.channel.upper()), ("Synchronization", mode), ("Priority", g.priority.capitalize()),
            ("Resync policy", g.resync_policy.capitalize()),
            ("Sync completion alert", f"{g.sync_alert_minutes} min"),
            ("Recovery point age alert", f"{g.recovery_point_alert_minutes} min"),
            ("Reserved capacity alert", f"{g.reserved_alert_percent} %")]
    prog = g.progress
    right = [("Status", last_known(status_label(g.status), stale)), ("Role", f"{g.role.capitalize()} on {g.array}"),
             ("Remote array", g.remote_array),
             ("Last recovery point", fmt.timestamp(g.last_recovery_point)),
             ("Recovery point age", fmt.age(g.recovery_point_age_seconds)),
             ("Next sync", fmt.timestamp(g.next_sync) if g.sync_mode == "scheduled" else "on demand"),
             ("Unsynchronized", format_size(g.unsynchronized_bytes)),
             ("Progress", f"{prog.percent:.1f} % ({format_size(prog.bytes_done)} of {format_size(prog.bytes_total)})"
              if prog else "idle"),
             ("Rate", fmt.rate(prog.rate if prog else None)), ("ETA", fmt.eta(prog.eta_seconds if prog else None)),
             ("Host writable", _yes(g.host_writable))]
    if g.last_sync is not None:
        right.append(("Last sync", f"{g.last_sync.outcome}, {format_size(g.last_sync.bytes_payload)} in "
                                   f"{g.last_sync.duration_seconds:.1f} s"))
    return left, right


def _drill_rows(drill: dict | None) -> list[tuple[str, str]]:
    """A running DR drill: where it runs, its recovery point, and one row per NBD export."""
    if drill is None:
        return [("DR drill", "not running")]
    rp = drill.get("recoveryPoint")
    if isinstance(rp, str):
        rp = datetime.fromisoformat(rp)
    rows = [("DR drill", f"running on {drill.get('array', '?')}" + (f", recovery point {fmt.timestamp(rp)}"
                                                                    if rp else ""))]
    for ref, uri in sorted((drill.get("exports") or {}).items()):
        rows.append((f"Drill export {ref}", uri or "not served (the engine serves no NBD)"))
    return rows


def _reserved_text(rc, threshold: int | None = None) -> str:
    """One side's reserved capacity: use, size, pool, and what it holds."""
    text = (f"{rc.utilization_pct:.1f} % used of {format_size(rc.capacity)} on {rc.pool} "
            f"(PIT {format_size(rc.pit_bytes)}, log {format_size(rc.log_bytes)}, "
            f"staging {format_size(rc.staging_bytes)})")
    if threshold is not None and rc.utilization_pct > threshold:
        text += f" \u2014 above the {threshold} % alert"
    return text


def _reserved_rows(g, other) -> list[tuple[str, str]]:
    """The reserved capacity of every pair on both sides: the secondary's is the one a sync fills."""
    rows = []
    for side in (g, other):
        if side is None:
            continue
        for p in side.pairs:
            role = "primary" if side.role == "primary" else "secondary"
            rows.append((f"Reserved {side.array}/{p.local_volume} ({role})",
                         _reserved_text(p.reserved_capacity, g.reserved_alert_percent)))
    return rows


def _pair_rows(p, g, partner=None, stale: bool = False):
    """Rows of a pair side ``p``; ``partner``: the other side's snapshot (its reserved capacity is shown too).

    ``stale``: ``p``'s array does not answer; its status is the last it reported.
    """
    rc = p.reserved_capacity
    here = "primary" if p.role == "primary" else "secondary"
    there = "secondary" if p.role == "primary" else "primary"
    threshold = g.reserved_alert_percent if g is not None else None
    left = [("Primary volume", p.primary_ref), ("Secondary volume", p.secondary_ref), ("Group", p.group),
            ("Role of this side", p.role.capitalize()),
            (f"Reserved capacity, {here} {p.array}/{p.local_volume}", _reserved_text(rc, threshold)),
            (f"Reserved capacity, {there} {p.remote_array}/{p.remote_volume}",
             _reserved_text(partner.reserved_capacity, threshold) if partner is not None
             else f"not known: {p.remote_array} does not answer")]
    prog = p.progress
    right = [("Status", last_known(_pair_status(p), stale) + (f" \u2014 {p.reason}" if p.reason else "")),
             ("Recovery point image", "available" if p.recovery_point_available else "none"),
             ("Last recovery point", fmt.timestamp(p.last_recovery_point)),
             ("Recovery point age", fmt.age(fmt.since(p.last_recovery_point))),
             ("Unsynchronized", format_size(p.unsynchronized_bytes)),
             ("Progress", f"{prog.percent:.1f} %" if prog else "idle"),
             ("Rate", fmt.rate(prog.rate if prog else None)), ("ETA", fmt.eta(prog.eta_seconds if prog else None))]
    if g is not None:
        right.append(("Reserved alert threshold", f"{g.reserved_alert_percent} %"))
    return left, right
