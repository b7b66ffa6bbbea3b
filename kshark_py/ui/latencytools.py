"""The window's latency analyses (issue 12, items 1-3): Analysis menu actions, their docks, the
layers they draw on the graph, and "show me this one" jumps.

* Scheduling latency: :class:`~.wakeuppanel.WakeupPanel` in a dock, wakeup boxes on task rows.
* Latency plot: :class:`~.latencyplot.LatencyDialog`, then :class:`~.latencyplot.LatencyPanel`
  in a dock, boxes on the end events' CPU and task rows.
* Field plot: :class:`~.fieldplot.FieldPlotDialog`, then a field row at the bottom of the graph.

A jump puts the interval in the middle of the graph (a fifth of its width, at least 20 µs of
context), markers A and B on its start and end (the marker bar shows the latency), scrolls its
row into view and highlights it, and selects its end event in the list.  A double click inside a
box does what KernelShark's does: markers A and B on its start and end.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from ..model.analysis.fieldplot import FieldPlotError
from ..model.viewmodel import Row
from ..plots.boxes import BoxLayer
from ..plots.fieldrow import FieldRowLayer, FieldSeries
from .analysisrange import AnalysisContext, RangeBox, RangeFollower
from .fieldplot import FieldPlotDialog, field_row
from .latencyplot import LATENCY_COLOR, LatencyDialog, LatencyPair, LatencyPanel, LatencyRequest
from .wakeuppanel import WAKEUP_COLOR, Wakeup, WakeupPanel

MIN_CONTEXT_NS = 20_000
"""A jump shows at least this much time around the interval."""


class LatencyTools(QtCore.QObject):
    """See the module doc.  ``window`` is the main window; ``ctx`` its analysis range context."""

    def __init__(self, window, ctx: AnalysisContext) -> None:
        super().__init__(window)
        self.win = window
        self.ctx = ctx
        self.wakeup_layer = BoxLayer(WAKEUP_COLOR)
        self.latency_layer = BoxLayer(LATENCY_COLOR, band=(0.24, 0.52))
        self.field_layer = FieldRowLayer()
        for layer in (self.wakeup_layer, self.latency_layer, self.field_layer):
            window.timeline.add_layer(layer)
        self.wakeup_panel: WakeupPanel | None = None
        self.latency_panel: LatencyPanel | None = None
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self.follow: dict[str, RangeFollower] = {}
        """Per dock key: its panel follows the view or markers while the dock is on screen."""
        window.timeline.timeDoubleClicked.connect(self._double_click)
        ctx.reset.connect(self.times_changed)

    def add_actions(self, menu: QtWidgets.QMenu) -> None:
        menu.addAction("&Scheduling latency", self.show_wakeups)
        menu.addAction("&Latency plot...", self.latency_dialog)
        menu.addAction("&Field plot...", self.field_plot_dialog)

    # -- docks ---------------------------------------------------------------------------------
    def _dock(self, key: str, title: str, widget: QtWidgets.QWidget, boxes) -> QtWidgets.QDockWidget:
        """Show ``widget`` in dock ``key``; closing the dock takes its boxes off the graph
        (``boxes()`` re-reads whether they show), opening it again puts them back."""
        dock = self.docks.get(key)
        if dock is None:
            dock = QtWidgets.QDockWidget(title, self.win)
            dock.setObjectName(key)
            dock.toggleViewAction().toggled.connect(lambda *_: boxes())
            dock.visibilityChanged.connect(self.follow[key].set_on_screen)
            right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
            self.win.addDockWidget(right, dock)
            others = [d for d in self.win.findChildren(QtWidgets.QDockWidget)
                      if d is not dock and d.isVisible() and self.win.dockWidgetArea(d) == right]
            self.docks[key] = dock
            if others:  # a tab beside the other panels, not a sliver under them
                self.win.tabifyDockWidget(others[-1], dock)
            self.win.resizeDocks([dock], [640], QtCore.Qt.Orientation.Horizontal)
        dock.setWindowTitle(title)
        dock.setWidget(widget)
        dock.show()
        dock.raise_()
        return dock

    def show_wakeups(self) -> WakeupPanel:
        """Analysis > Scheduling latency: the per-task table and the boxes on task rows."""
        if self.wakeup_panel is None:
            p = WakeupPanel(self.win.session, RangeBox("all"), self.ctx.range_for)
            p.wakeupChosen.connect(self.show_wakeup)
            p.boxes.toggled.connect(lambda *_: self._wakeup_boxes())
            self.follow["wakeups"] = RangeFollower(self.ctx, lambda: p.range_box.mode, p.refresh, p)
            self.wakeup_panel = p
            self._compute_wakeups()
        self._dock("wakeups", "Scheduling latency", self.wakeup_panel, self._wakeup_boxes)
        self._wakeup_boxes()
        return self.wakeup_panel

    def _shown(self, key: str) -> bool:
        """The dock is open (a tab behind another counts as open; closed with its X does not)."""
        d = self.docks.get(key)
        return d is not None and d.toggleViewAction().isChecked()

    def _wakeup_boxes(self) -> None:
        p = self.wakeup_panel
        on = p is not None and p.lanes is not None and p.boxes.isChecked() and self._shown("wakeups")
        self.wakeup_layer.set_source(p.lanes.for_row if on else None)
        self.win.timeline.schedule()

    def _latency_boxes(self) -> None:
        p = self.latency_panel
        on = p is not None and p.lanes is not None and p.boxes.isChecked() and self._shown("latency")
        self.latency_layer.set_source(p.lanes.for_row if on else None)
        self.win.timeline.schedule()

    def _compute_wakeups(self) -> None:
        p = self.wakeup_panel
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            p.compute()
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self._wakeup_boxes()

    def latency_dialog(self) -> None:
        """Analysis > Latency plot...: choose the events, then show the analysis."""
        old = self.latency_panel.request if self.latency_panel is not None else None
        dlg = LatencyDialog(self.win.session, self.win, old)
        if dlg.exec() and dlg.result_request is not None:
            self.show_latency(dlg.result_request)

    def show_latency(self, req: LatencyRequest) -> LatencyPanel:
        if self.latency_panel is None:
            p = LatencyPanel(self.win.session, self.win.names, RangeBox("all"), self.ctx.range_for)
            p.pairChosen.connect(self.show_pair)
            p.change.clicked.connect(self.latency_dialog)
            p.boxes.toggled.connect(lambda *_: self._latency_boxes())
            self.follow["latency"] = RangeFollower(self.ctx, lambda: p.range_box.mode, p.refresh, p)
            self.latency_panel = p
        p = self.latency_panel
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            p.compute(req)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self._dock("latency", f"Latency: {req.title}", p, self._latency_boxes)
        self._latency_boxes()
        return p

    def field_plot_dialog(self) -> None:
        """Analysis > Field plot...: add the chosen field's row."""
        dlg = FieldPlotDialog(self.win.session, self.win)
        if dlg.exec() and dlg.chosen is not None:
            self.add_field_row(*dlg.chosen)

    def add_field_row(self, stream: int, event: str, field: str, warn: Callable[[str], None] | None = None
                      ) -> Row | None:
        """Show ``event.field`` of ``stream`` as a row at the bottom of the graph, scrolled into view.
        A field that cannot be plotted is said in a message box, or to ``warn`` (a session being restored)."""
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)  # ~1 s for 10 M records
        try:
            row = field_row(self.win.session, self.win.sources, stream, event, field)
        except FieldPlotError as e:
            QtWidgets.QApplication.restoreOverrideCursor()
            if warn is not None:
                warn(f"field row {event}.{field}: {e}")
            else:
                QtWidgets.QMessageBox.warning(self.win, "Field plot", str(e))
            return None
        QtWidgets.QApplication.restoreOverrideCursor()
        self.win.model.add_custom_row(row)
        i = next(k for k, r in enumerate(self.win.model.rows) if r is row)
        self.win.timeline.ensure_rows_visible([i])
        return row

    # -- sessions ----------------------------------------------------------------------------------
    def panels_state(self) -> dict:
        """The open panels, for a session file (:attr:`SessionState.panels`)."""
        out: dict = {}
        if self.wakeup_panel is not None and self._shown("wakeups"):
            out["wakeups"] = True
        req = self.latency_panel.request if self.latency_panel is not None else None
        if req is not None and self._shown("latency"):
            out["latency"] = {"start": req.start, "end": req.end, "match": [list(m) for m in req.match]}
        return out

    def restore_panels(self, panels: dict, warn: Callable[[str], None]) -> None:
        """Open the panels a session file lists (what cannot be shown is told to ``warn``)."""
        if panels.get("wakeups"):
            self.show_wakeups()
        lat = panels.get("latency")
        if isinstance(lat, dict):
            try:
                req = LatencyRequest(str(lat["start"]), str(lat["end"]),
                                     tuple((str(a), str(b)) for a, b in lat.get("match") or []))
                self.show_latency(req)
            except (KeyError, TypeError, ValueError) as e:  # LatencyError is a ValueError
                warn(f"latency panel of the session: {e}")

    # -- after a time offset ---------------------------------------------------------------------
    def times_changed(self) -> None:
        """A stream's times moved: pair again, re-read the field rows."""
        if self.wakeup_panel is not None:
            self._compute_wakeups()
        if self.latency_panel is not None and self.latency_panel.request is not None:
            self.latency_panel.compute()  # the dock stays as it is (closed stays closed)
            self._latency_boxes()
        for r in self.win.model.custom_rows():
            s = r.data
            if r.kind == "field" and isinstance(s, FieldSeries):
                self.win.model.add_custom_row(field_row(self.win.session, self.win.sources, s.stream, s.event,
                                                        s.field))

    # -- jumps -------------------------------------------------------------------------------------
    def show_wakeup(self, w: Wakeup) -> None:
        """The wakeup's task row (added if not shown), the box centred, A/B on waking and switch."""
        self.win.model.add_task_row(w.stream, w.pid)
        rows = [i for i, r in enumerate(self.win.model.rows) if r.kind == "task" and r.stream == w.stream
                and r.pid == w.pid]
        self.show_interval(w.stream, w.pid, w.waking_ts, w.switch_ts, w.switch_row, rows)

    def show_pair(self, p: LatencyPair) -> None:
        """A latency pair: its end event's CPU row (and task row when shown) centred, A/B on it."""
        rows = [i for i, r in enumerate(self.win.model.rows)
                if r.stream == p.stream and ((r.kind in ("cpu", "vcpu_guest") and r.cpu == p.cpu)
                                             or (r.kind == "task" and r.pid == p.pid))]
        self.show_interval(p.stream, p.pid, p.start_ts, p.end_ts, p.end_row, rows)

    def show_interval(self, stream: int, pid: int | None, start: int, end: int, end_row: int,
                      rows: list[int]) -> None:
        win = self.win
        dur = max(int(end) - int(start), 0)
        span = max(5 * dur, MIN_CONTEXT_NS)
        t0 = int(start) - (span - dur) // 2
        win.timeline.set_range(t0, t0 + span)
        win.set_marker("A", int(start))
        win.set_marker("B", int(end))
        m = win.model.merged_index(int(stream), int(end_row))
        if m >= 0:
            win.event_list.select_merged_index(m)
        else:  # filtered out of the list: the nearest listed event
            win.event_list.select_time(int(end))
        win.timeline.ensure_rows_visible(rows)
        win.view.set_highlight(None)  # not a VCPU pair: the pair's highlight goes, these rows take it
        win.model.highlight_pid = (int(stream), int(pid)) if pid else None  # the idle task: no dimming
        win.timeline.highlight_rows(rows)
        win.timeline.schedule()

    def _double_click(self, row: int, ts: int) -> None:
        """Inside a box: markers A and B on its start and end (KernelShark's double click)."""
        if not 0 <= row < len(self.win.model.rows):
            return
        r = self.win.model.rows[row]
        for layer in (self.wakeup_layer, self.latency_layer):
            lane = layer.lanes(r) if layer.lanes is not None else None
            k = lane.at(int(ts)) if lane is not None else None
            if k is not None:
                self.win.set_marker("A", int(lane.start[k]))
                self.win.set_marker("B", int(lane.end[k]))
                return
