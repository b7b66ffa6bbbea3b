"""The window's VM analyses (issue 12, items 4-6): where the panels are opened from.

Analysis > VM exits and Analysis > VCPU time open their docks (once; later they are shown again);
a guest task row's context menu offers to explain the task's time between markers A and B or
over the view; a guest wakeup is explained from Analysis > Explain selected wakeup (its
``sched_waking``, or the ``sched_switch`` ending it, selected in the event list), from that
event's context menu in the list, and, once the cross-layer panel is open, from each guest wakeup
chosen in the scheduling latency table.  The panels are built on first use: a window that never
opens them pays nothing.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from .analysisrange import AnalysisContext

WAKEUP_EVENTS = ("sched_waking", "sched_wakeup", "sched_wakeup_new", "sched_switch")


class VmAnalyses(QtCore.QObject):
    """Owns the three panels of one main window (``window``: its session, timeline, list, markers)."""

    def __init__(self, window, ctx: AnalysisContext) -> None:
        super().__init__(window)
        self.w, self.ctx = window, ctx
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self.exits = self.vcputime = self.crosslayer = None
        window.timeline.rowMenuAboutToShow.connect(self.row_menu)
        ctx.changed.connect(lambda: self.crosslayer is not None and self._follow_wakeup_table())
        self._list = None
        self._hook_list()
        ctx.reset.connect(self._hook_list)  # a time offset replaces the event list

    def _hook_list(self) -> None:
        lst = getattr(self.w, "event_list", None)
        if lst is not None and lst is not self._list and hasattr(lst, "menuAboutToShow"):
            lst.menuAboutToShow.connect(self.list_menu)
            self._list = lst

    def list_menu(self, merged_index: int, menu: QtWidgets.QMenu) -> None:
        """A guest's sched_waking (or the sched_switch ending a wakeup) in the list: explain it."""
        m = self.w.event_list.model
        s, row, _, _, _, eid, _, _ = m.event_fields(int(merged_index))
        if m.event_name(s, eid) in WAKEUP_EVENTS and self.ctx.session.streams[s].role == "guest":
            menu.addSeparator()
            menu.addAction("Explain this wakeup (guest and host causes)",
                           lambda: self.show_crosslayer().explain_wakeup(s, row))

    def add_actions(self, menu: QtWidgets.QMenu) -> None:
        if menu.actions():
            menu.addSeparator()
        menu.addAction("VM &exits", self.show_exits)
        menu.addAction("&VCPU time", self.show_vcputime)
        menu.addAction("Explain selected &wakeup (guest)", self.explain_selected_wakeup)
        menu.addAction("Clear &framed intervals", self.clear_marks)

    def clear_marks(self) -> None:
        for p in (self.exits, self.vcputime, self.crosslayer):
            if p is not None:
                p.marks.clear()

    def _dock(self, key: str, title: str, widget: QtWidgets.QWidget) -> None:
        dock = self.docks.get(key)
        if dock is None:
            dock = self.docks[key] = QtWidgets.QDockWidget(title, self.w)
            dock.setObjectName(title)
            dock.setWidget(widget)
            if hasattr(widget, "set_on_screen"):
                dock.visibilityChanged.connect(widget.set_on_screen)
            self.w.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
            others = [d for d in self.w.findChildren(QtWidgets.QDockWidget) if d is not dock and d.isVisible()
                      and self.w.dockWidgetArea(d) == QtCore.Qt.DockWidgetArea.RightDockWidgetArea]
            if others:  # a tab beside the VCPU map and sync panels, not a sliver under them
                self.w.tabifyDockWidget(others[-1], dock)
            # tables of nine columns and bars need room: 40 % of the window (the graph keeps the rest)
            self.w.resizeDocks([dock], [max(480, int(self.w.width() * 0.4))], QtCore.Qt.Orientation.Horizontal)
            QtCore.QTimer.singleShot(0, lambda: self._tall(dock))
        dock.show()
        dock.raise_()

    def _tall(self, dock: QtWidgets.QDockWidget) -> None:
        """Most of the right side's height for the panel (once laid out): the docks above or below
        it outside its tab group (the VCPU map) keep a fifth."""
        group = set(self.w.tabifiedDockWidgets(dock)) | {dock}
        right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        rest = [d for d in self.w.findChildren(QtWidgets.QDockWidget) if d not in group and d.isVisible()
                and self.w.dockWidgetArea(d) == right]
        if rest:
            h = self.w.height()
            self.w.resizeDocks([dock, *rest], [int(h * 0.8)] + [int(h * 0.2 / len(rest))] * len(rest),
                               QtCore.Qt.Orientation.Vertical)

    def panels_state(self) -> dict:
        """The open VM panels, for a session file (:attr:`SessionState.panels`)."""
        return {k: True for k in ("exits", "vcputime")
                if k in self.docks and self.docks[k].toggleViewAction().isChecked()}

    def restore_panels(self, panels: dict) -> None:
        if panels.get("exits"):
            self.show_exits()
        if panels.get("vcputime"):
            self.show_vcputime()

    def show_exits(self):
        from .exitspanel import ExitsPanel

        if self.exits is None:
            self.exits = ExitsPanel(self.w, self.ctx)
        self._dock("exits", "VM exits", self.exits)
        return self.exits

    def show_vcputime(self):
        from .vcputimepanel import VcpuTimePanel

        if self.vcputime is None:
            self.vcputime = VcpuTimePanel(self.w, self.ctx)
        self._dock("vcputime", "VCPU time", self.vcputime)
        return self.vcputime

    def show_crosslayer(self):
        from .crosslayer import CrossLayerPanel

        if self.crosslayer is None:
            self.crosslayer = CrossLayerPanel(self.w, self.ctx.session)
            self.ctx.reset.connect(self.crosslayer.worker.clear_cache)
        self._follow_wakeup_table()
        self._dock("crosslayer", "Cross-layer latency", self.crosslayer)
        return self.crosslayer

    def _follow_wakeup_table(self) -> None:
        """Once the cross-layer panel exists, a guest wakeup chosen in the scheduling latency table
        (Analysis > Scheduling latency) is explained there too."""
        tools = getattr(self.w, "latency_tools", None)
        table = getattr(tools, "wakeup_panel", None)
        if table is not None and not getattr(self, "_following", False):
            table.wakeupChosen.connect(self._wakeup_chosen)
            self._following = True

    def _wakeup_chosen(self, wk) -> None:
        if self.ctx.session.streams[wk.stream].role == "guest" and self.crosslayer is not None:
            self.crosslayer.explain_wakeup(wk.stream, wk.waking_row)

    # -- entry points of the cross-layer split ----------------------------------------------------
    def row_menu(self, row: int, menu: QtWidgets.QMenu) -> None:
        """A guest task row: explain its time between the markers or over the view."""
        r = self.w.model.rows[row]
        st = self.ctx.session.streams[r.stream]
        if r.kind != "task" or st.role != "guest":
            return
        menu.addSeparator()
        ab = self.ctx.range_for("markers")
        a = menu.addAction("Explain time between markers A and B")
        a.setEnabled(ab is not None)
        if ab is None:
            a.setToolTip("Set markers A and B first")
        else:
            a.triggered.connect(lambda: self.explain_task(r.stream, r.pid, *ab, "between markers A and B"))
        menu.addAction("Explain time in the view",
                       lambda: self.explain_task(r.stream, r.pid, *self.w.timeline.view_range(), "in the view"))

    def explain_task(self, stream: int, pid: int, t0: int, t1: int, what: str) -> None:
        self.show_crosslayer().explain_task(stream, pid, t0, t1, what)

    def explain_selected_wakeup(self) -> bool:
        """The event list's selected wakeup event, explained (a message says why not otherwise)."""
        self._follow_wakeup_table()
        lst = self.w.event_list
        m = lst.current_merged_index()
        why = "Select a sched_waking event of a guest task in the list (or the sched_switch that runs it)."
        if m is not None:
            s, row, _, _, _, eid, _, _ = lst.model.event_fields(m)
            name = lst.model.event_name(s, eid)
            if name in WAKEUP_EVENTS and self.ctx.session.streams[s].role == "guest":
                self.show_crosslayer().explain_wakeup(s, row)
                return True
            if name in WAKEUP_EVENTS:
                why = "That event is on the host: a cross-layer split is for a guest task's wakeup."
        QtWidgets.QMessageBox.information(self.w, "Explain wakeup", why)
        return False
