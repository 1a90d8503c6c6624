"""The Mirror menu's actions, enabled only where they apply to the selection.

No Promote on a primary side, no Resume unless suspended, no Delete on a group that
still has pairs: the state decides, the actions follow the selection and the live
snapshots.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.dialogs.reserved_capacity import IncreaseReservedCapacityDialog
from gui.dialogs.role_change import RoleChangeDialog
from gui.dialogs.test_communication import TestCommunicationDialog
from gui.dialogs.verify import VerifyDialog
from gui.messages import confirm, error_handler
from gui.selection import Selection
from gui.theme import icon, status_label

if TYPE_CHECKING:  # imported when opened: their rules (core.groups) import the array's storage (SQLAlchemy)
    from gui.wizards.create_group import CreateGroupWizard
    from gui.wizards.create_pair import CreatePairWizard

SUSPENDED = ("user_suspended", "system_suspended")
ROLE_CHANGING = ("role_change_pending", "role_change_in_progress")


class MirrorActions(QObject):
    """Creates the actions; ``update()`` re-evaluates which apply."""

    sig_dialog_opened = Signal(QWidget)
    """A wizard or dialog was opened (tests and screenshots drive it from here)."""
    sig_lro_requested = Signal()
    """Long Running Operations asked for: the main window shows its (non-modal) dock."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, window: QWidget):
        super().__init__(window)
        self.bridge, self.state, self.window = bridge, state, window
        self.selection: Selection | None = None
        a = self._action
        self.new_group = a("Create mirror consistency group\u2026", self.open_create_group, "group", "Ctrl+G")
        self.new_pair = a("Create mirrored pair\u2026", self.open_create_pair, "pair", "Ctrl+P")
        self.sync_now = a("Synchronize now", lambda: self._group_call("sync_now", "Synchronize now"),
                          "status_synchronizing")
        self.suspend = a("Suspend", lambda: self._group_call("suspend", "Suspend"), "status_suspended")
        self.resume = a("Resume", lambda: self._group_call("resume", "Resume"), "status_optimal")
        self.verify = a("Verify consistency", self.open_verify)
        self.settings = a("Synchronization settings\u2026", self.open_settings)
        self.promote = a("Promote to primary\u2026", self.open_role_change, "role_primary")
        self.demote = a("Demote to secondary\u2026", self.open_role_change, "role_secondary")
        self.cancel_role = a("Cancel role change", lambda: self._group_call("role_cancel", "Cancel role change"))
        self.test_comm = a("Test communication\u2026", self.open_test_communication)
        self.reserved = a("Increase reserved capacity\u2026", lambda: self.open_reserved())
        self.remove_pair = a("Remove mirrored pair\u2026", self.do_remove_pair)
        self.delete_group = a("Delete mirror consistency group\u2026", self.do_delete_group)
        self.drill_start = a("Start DR drill", self.do_drill_start)
        self.drill_stop = a("Stop DR drill", self.do_drill_stop)
        self.lro = a("Long running operations\u2026", self.open_lro)
        # group name -> (its primary side's snapshot, when received): what a forced promotion of the
        # secondary gives up is what the primary had not sent at last contact, even once it stops answering.
        self.primary_seen: dict[str, tuple] = {}
        self.guru_problems: tuple = ()
        bridge.sig_ready.connect(self.update)
        state.sig_groups_changed.connect(self._remember_primaries)
        state.sig_groups_changed.connect(self.update)
        state.sig_arrays_changed.connect(self.update)
        state.sig_drills_changed.connect(self.update)
        self.update()

    def _action(self, text, slot, icon_name=None, shortcut=None) -> QAction:
        act = QAction(text, self.window)
        if icon_name:
            act.setIcon(icon(icon_name))
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        return act

    def fill_menu(self, menu: QMenu) -> None:
        for group in ((self.new_group, self.new_pair), (self.sync_now, self.suspend, self.resume, self.verify,
                                                        self.settings),
                      (self.promote, self.demote, self.cancel_role), (self.drill_start, self.drill_stop),
                      (self.test_comm, self.reserved),
                      (self.remove_pair, self.delete_group), (self.lro,)):
            menu.addActions(list(group))
            menu.addSeparator()

    # -- what is selected ---------------------------------------------------------------
    def set_selection(self, sel: Selection | None) -> None:
        self.selection = sel
        self.update()

    def group(self):
        """The selected group side (a pair selects its group on the same array)."""
        sel = self.selection
        if sel is None:
            return None
        if sel.kind == "group":
            return self.state.group(sel.name, sel.array)
        if sel.kind == "pair":
            p = self.state.pair(sel.array, sel.name)
            return self.state.group(p.group, sel.array) if p else None
        return None

    def pair(self):
        sel = self.selection
        return self.state.pair(sel.array, sel.name) if sel is not None and sel.kind == "pair" else None

    def set_guru_problems(self, problems) -> None:
        """The Recovery Guru's current problems: Resume follows what the Guru offers for the group."""
        self.guru_problems = tuple(problems)
        self.update()

    def _guru_resume(self, group: str):
        """The Guru's Resume actions for ``group`` (the fixes of its current problems)."""
        return [a for p in self.guru_problems for a in p.actions
                if a.id == "resume" and getattr(a, "target", "") == group]

    def _resume_refusal(self, g) -> str:
        """Why Resume cannot act on ``g`` now, or ''."""
        if g is None:
            return "select a mirror consistency group or one of its pairs"
        offered = self._guru_resume(g.name)
        if any(not a.blocked for a in offered):
            return ""
        if offered:
            return offered[0].blocked
        if g.status in SUSPENDED:
            failed = [f"{p.array}/{p.local_volume}" for p in g.pairs
                      if any(v.failed and v.array == p.array and v.name == p.local_volume for v in self.state.volumes)]
            return f"repair {', '.join(failed)} first: a failed volume cannot be resynchronized" if failed else ""
        if g.status == "paused":
            return (f"{g.name} is paused: {g.array} cannot reach {g.remote_array}; it resumes by its resync "
                    f"policy ({g.resync_policy}) when the link returns")
        return f"{g.name} is not suspended ({status_label(g.status)})"

    @staticmethod
    def _allow(action: QAction, why: str) -> None:
        """Enable ``action`` when ``why`` is empty; else disable it and say why in its tooltip."""
        action.setEnabled(not why)
        text = action.text().rstrip("\u2026")
        action.setToolTip(f"{text}: not available \u2014 {why}" if why else text)
        action.setStatusTip(f"Not available: {why}" if why else "")

    def update(self, *_) -> None:
        ready = self.bridge.ready
        g, p = self.group(), self.pair()
        primary = g is not None and g.role == "primary"
        status = g.status if g else ""
        allow = self._allow
        starting = "the engine is starting" if not ready else ""
        no_group = "select a mirror consistency group or one of its pairs" if g is None else ""
        self.new_group.setEnabled(ready and len(self.state.arrays) >= 2)
        self.new_pair.setEnabled(ready and any(x.role == "primary" for x in self.state.groups))

        def on_primary(what: str) -> str:
            if starting or no_group:
                return starting or no_group
            if not primary:
                return f"{what} acts on the primary side: select {g.name} on {g.remote_array}"
            if status in ROLE_CHANGING:
                return f"{g.name} is changing roles"
            return ""
        sync_why = on_primary("Synchronize now") or (
            f"{g.name} has no mirrored pairs" if not g.pairs else
            f"{g.name} is {status_label(status).lower()}: resume it first" if status in SUSPENDED else "")
        allow(self.sync_now, sync_why)
        allow(self.suspend, on_primary("Suspend") or (f"{g.name} is already suspended" if status in SUSPENDED
                                                      else ""))
        allow(self.resume, starting or self._resume_refusal(g))
        self.verify.setEnabled(ready and primary and bool(g.pairs))
        self.settings.setEnabled(ready and primary)
        allow(self.promote, starting or no_group or (
            f"{g.name} is already primary on {g.array}" if g.role != "secondary" else
            f"{g.name} is changing roles" if status in ROLE_CHANGING else ""))
        allow(self.demote, starting or no_group or (
            f"{g.name} is already secondary on {g.array}" if not primary else
            f"{g.name} is changing roles" if status in ROLE_CHANGING else ""))
        self.cancel_role.setEnabled(ready and status == "role_change_pending")
        sel = self.selection
        self.test_comm.setEnabled(ready and (g is not None or (sel is not None and sel.kind == "array")))
        allow(self.reserved, starting or ("select a mirrored pair" if p is None else ""))
        self.remove_pair.setEnabled(ready and p is not None and (p.role == "primary" or p.status == "orphan"))
        self.delete_group.setEnabled(ready and g is not None and not g.pairs and (primary or status == "orphan"))
        drilling = g is not None and g.name in self.state.drills
        self.drill_start.setEnabled(ready and g is not None and bool(g.pairs) and not drilling)
        self.drill_stop.setEnabled(ready and drilling)
        self.lro.setEnabled(ready)

    # -- handlers -------------------------------------------------------------------------
    def _open(self, dialog: QWidget) -> QWidget:
        dialog.open()
        self.sig_dialog_opened.emit(dialog)
        return dialog

    def open_create_group(self) -> CreateGroupWizard:
        from gui.wizards.create_group import CreateGroupWizard

        local = self.selection.array if self.selection else None
        return self._open(CreateGroupWizard(self.bridge, self.state, local=local, parent=self.window))

    def open_create_pair(self) -> CreatePairWizard:
        from gui.wizards.create_pair import CreatePairWizard

        g = self.group()
        volume = self.selection.name if self.selection and self.selection.kind == "volume" else None
        return self._open(CreatePairWizard(self.bridge, self.state, group=g.name if g else None, volume=volume,
                                           parent=self.window))

    def _group_call(self, method: str, title: str) -> None:
        g = self.group()
        if g is not None:
            self.bridge.call(method, g.name, on_error=error_handler(self.window, title))

    def open_verify(self) -> VerifyDialog | None:
        g = self.group()
        return self._open(VerifyDialog(self.bridge, g.name, self.window)) if g is not None else None

    def open_settings(self) -> None:
        from gui.dialogs.sync_settings import SyncSettingsDialog

        g = self.group()
        if g is not None:
            self._open(SyncSettingsDialog(self.bridge, g, self.window))

    def _remember_primaries(self, groups) -> None:
        now = datetime.now(timezone.utc)
        for g in groups:
            if g.role == "primary" and g.status != "role_conflict":
                self.primary_seen[g.name] = (g, now)

    def open_role_change(self) -> None:
        g = self.group()
        if g is None:
            return
        primary, seen = self.primary_seen.get(g.name, (None, None))
        if primary is not None and primary.array == g.array:
            primary, seen = None, None  # this side itself was primary: a forced promotion of a primary is moot
        self._open(RoleChangeDialog(self.bridge, g, self.window, primary=primary, primary_seen=seen))

    def open_test_communication(self) -> None:
        g = self.group()
        if g is not None:
            local, remote = g.array, g.remote_array
        else:
            local = self.selection.array
            others = [n for n in self.state.array_names() if n != local]
            if not others:
                return
            remote = others[0]
        self._open(TestCommunicationDialog(self.bridge, local, remote, self.window))

    def open_reserved(self, ref: str | None = None, percent: int | None = None, why: str = ""):
        """Increase the reserved capacity of ``ref`` (ARRAY/VOLUME; default: the selected pair's side).

        The dialog shows what the increase takes from which pool and asks before it changes anything.
        """
        if ref:
            a, _, v = ref.partition("/")
            p = self.state.pair(a, v)
        else:
            p = self.pair()
        if p is None:
            return None
        v = next((x for x in self.state.volumes if x.array == p.array and x.name == p.local_volume), None)
        arr = next((x for x in self.state.arrays if x.name == p.array), None)
        pool = next((x for x in arr.pools if x.name == p.reserved_capacity.pool), None) if arr is not None else None
        return self._open(IncreaseReservedCapacityDialog(self.bridge, p, v.capacity if v else 0, self.window,
                                                         pool_free=pool.free if pool is not None else None,
                                                         suggested=percent, why=why))

    def on_guru_action(self, problem, action) -> None:
        """A Recovery Guru fix the console carries out itself (asking first): a reserved-capacity increase."""
        if action.id == "increase-reserved-capacity":
            self.open_reserved(action.target, int(action.value) or None,
                               f"Recovery Guru: {problem.title}. {problem.cause}")

    def do_remove_pair(self) -> None:
        p = self.pair()
        if p is None:
            return
        if confirm(self.window, "Remove mirrored pair",
                   f"Remove the mirrored pair {p.primary_ref} \u2192 {p.secondary_ref}? The volumes and their data "
                   "are kept; mirroring stops.", destructive=True):
            self.bridge.call("remove_pair", f"{p.array}/{p.local_volume}",
                             on_error=error_handler(self.window, "Remove mirrored pair"))

    def do_delete_group(self) -> None:
        g = self.group()
        if g is not None and confirm(self.window, "Delete mirror consistency group",
                                     f"Delete the empty group {g.name} on both arrays?", destructive=True):
            self.bridge.call("delete_group", g.name, on_error=error_handler(self.window, "Delete group"))

    def do_drill_start(self) -> None:
        """Expose the group's last recovery point as writable NBD exports on the secondary array."""
        g = self.group()
        if g is not None:
            self.bridge.call("drill_start", g.name, on_done=self._drill_started,
                             on_error=error_handler(self.window, "Start DR drill"))

    def _drill_started(self, result: dict) -> None:
        self.state.drill_started(result)
        exports = result.get("exports") or {}
        lines = "\n".join(f"{ref}:  {uri or 'not served (the engine serves no NBD)'}"
                          for ref, uri in sorted(exports.items()))
        box = QMessageBox(QMessageBox.Information, "DR drill started",
                          f"DR drill of {result['group']} is running on {result.get('array', '?')} at the recovery "
                          f"point of {fmt.when(result.get('recoveryPoint'))}.\n\nAttach test hosts to:\n{lines}\n\n"
                          "Writes to these exports are discarded when the drill stops; mirroring continues.",
                          QMessageBox.Ok, self.window)
        box.setObjectName("drillStartedBox")
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.open()
        self.sig_dialog_opened.emit(box)

    def do_drill_stop(self) -> None:
        g = self.group()
        if g is not None:
            self.bridge.call("drill_stop", g.name, on_done=lambda _r, n=g.name: self.state.drill_stopped(n),
                             on_error=error_handler(self.window, "Stop DR drill"))

    def open_lro(self) -> None:
        self.sig_lro_requested.emit()
