"""The main window: timeline on top, event list below, VCPU map and sync panels at the side.

Widgets keep no copy of model state: the timeline renders from the TimelineModel, the list from
the session's merged view and the Filters object; changes go through those objects and every view
refreshes from them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from ..model import sessionfile as sf
from ..model.dataloss import session_losses
from ..model.filters import Filters
from ..model.loading import LoadResult
from ..model.preview import Preview
from ..model.session import Session
from ..model.sessionfile import SessionFileError, SessionState, load_session_file, save_session
from ..model.taskindex import TaskIndex
from ..model.vcpus import VcpuMapping, build_vcpu_map, causality_by_vcpu
from ..model.viewmodel import RowSources, TimelineModel
from ..model.viewstate import ViewState
from ..plots.timeline import TimelineWidget
from . import filterdialogs as fd
from .analysisrange import AnalysisContext
from .loadingview import LoadingView
from .lossbanner import LossBanner
from .openrequest import OpenRequest
from .panels import MarkerBar, StateLegend, SyncPanel, VcpuMapDialog, VcpuMapPanel, parse_task_choice, task_choices


def _initial_size(want: tuple[int, int] = (1500, 950)) -> tuple[int, int]:
    """The first size of a main window: ``want``, shrunk to fit the screen's free area.

    Without a window manager (Xvfb, a kiosk) nothing shrinks a window larger than the screen, and
    its title bar buttons and right edge are then out of reach: 1500x950 on a 1280x800 display.
    """
    screen = QtGui.QGuiApplication.primaryScreen()
    if screen is None:
        return want
    free = screen.availableGeometry()
    return (max(640, min(want[0], free.width() - 40)), max(480, min(want[1], free.height() - 60)))


class MainWindow(QtWidgets.QMainWindow):
    """One session's window. It never opens windows itself: it asks with :attr:`openRequested`."""

    openRequested = QtCore.Signal(object)  # OpenRequest
    windowOpened = QtCore.Signal(object)  # a MainWindow made for this one (a live capture's), for the app to own

    def __init__(self, session: Session | None, vcpu_map: list[VcpuMapping], *, paths: list[str],
                 user_map: dict[str, dict[int, int]] | None = None, parent=None,
                 preview: Preview | None = None, cancel_load: Callable[[], None] | None = None) -> None:
        """A window for a loaded ``session``; or, with ``session=None``, a window that shows a load's
        page-header ``preview`` until :meth:`finish_load` gives it the session (``cancel_load``: what
        its Cancel button and closing it do meanwhile)."""
        super().__init__(parent)
        self.paths = list(paths)
        self.user_map = dict(user_map or {})
        self.setWindowTitle("kshark-py - " + ", ".join(os.path.basename(p) for p in paths))
        self.resize(*_initial_size())
        self.loading: LoadingView | None = None
        """While the load runs: the preview's timeline, progress and cancel (None once loaded)."""
        if session is None:
            self.loading = LoadingView(self, preview or Preview([]), cancel_load)
            return
        self._build_session(session, vcpu_map)

    def _build_session(self, session: Session, vcpu_map: list[VcpuMapping]) -> None:
        self.session = session
        self.vcpu_map = vcpu_map
        self._build_model()
        self._build_ui()
        self._build_menus()
        self.timeline.rows_changed()
        t = self.session.merged().ts
        if len(t):
            self.timeline.set_full_range(int(t.min()), int(t.max()))
            self.timeline.zoom_to_fit()
        self._fill_panels()

    # -- a load in progress (progressive first view) ---------------------------------------------
    def finish_load(self, res: LoadResult, state: SessionState | None = None) -> None:
        """The load is done: the session replaces the preview.  What a session file says wins;
        else a range the user zoomed or panned to during the load stays."""
        loading, self.loading = self.loading, None
        moved = loading.user_range() if loading is not None else None
        chosen = loading.chosen_event(res.session) if loading is not None else None
        if loading is not None:
            loading.dismantle()
        self._build_session(res.session, res.vcpu_map)
        if chosen is not None:  # the row the user picked (or scrolled to) in the loading list
            self.event_list.keep_place(*chosen)
        # a shown window lays its new docks out on the next turn of the event loop: size them after
        QtCore.QTimer.singleShot(0, self._size_docks)
        if state is not None:
            self.apply_state(state)
        if moved is not None and (state is None or not state.range):
            self.view.set_range(*moved)

    def load_cancelled(self) -> None:
        """The load ended without a session (cancelled): the preview stays, saying so."""
        if self.loading is not None:
            self.loading.cancelled()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802
        if self.loading is not None:  # closing a window that is still loading cancels its load
            self.loading.cancel()
        super().closeEvent(ev)

    # -- model -------------------------------------------------------------------------------
    def names(self, stream: int, pid: int | None) -> str:
        if pid is None:
            return "?"
        return self.tasks.comm(stream, int(pid))

    def _mask(self, stream: int):
        """The filter mask the graph applies to one stream's rows (None: nothing filtered there,
        or graph filtering off)."""
        f = self.filters
        if not f.apply_to_graph or not f.is_active():
            return None
        return f.stream_mask(self.session.streams[stream])

    def _build_model(self) -> None:
        self.filters = Filters()
        self.tasks = TaskIndex(self.session)
        self.sources = RowSources(self.session, self.names, mask=self._mask)
        self.model = TimelineModel(self.session, self.sources)
        self.model.default_rows(self.vcpu_map)
        self.view = ViewState()
        """Range, markers, active marker, highlighted pair: widgets follow it, sessions save it."""

    # -- widgets -----------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.timeline = TimelineWidget(self.model, self.view)
        self.analysis = AnalysisContext(self.session, self)  # the range the analysis panels follow
        view = self.view
        # read the state, not the event's arguments: a nested change (the graph rounding a range
        # it was given) may reach later observers before the outer one
        view.events.range.connect(lambda *_: self.analysis.set_view(*view.range))
        view.events.marker.connect(lambda name, _ts: self.analysis.set_marker(name, view.markers[name]))
        self.markers = MarkerBar()
        view.events.marker.connect(lambda name, _ts: self.markers.set_time(name, view.markers[name]))
        view.events.active_marker.connect(self.markers.set_active)
        self.markers.activeChanged.connect(view.set_active_marker)
        view.events.highlight.connect(self._show_highlight)
        self.model.rows_changed.connect(lambda: view.set_highlight(None))  # the graph dropped it
        top = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(top)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self._toolbar())
        plot_row = QtWidgets.QHBoxLayout()  # the timeline and its vertical scroll bar
        plot_row.setSpacing(0)
        plot_row.addWidget(self.timeline, 1)
        plot_row.addWidget(self.timeline.vscroll_box)
        lay.addLayout(plot_row, 1)
        if any(r.kind == "vcpu_state" for r in self.model.rows):
            lay.addWidget(StateLegend())
        lay.addWidget(self.markers)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        # imported here: the info-text renderer behind the list is not needed for a load's preview
        from .eventlist import EventListView

        self.event_list = EventListView(self.session, self.filters, self.tasks)
        self.splitter.addWidget(self.event_list)
        self.event_list.rowSelected.connect(self._on_list_selected)
        self.event_list.taskPlotRequested.connect(self.add_task_row)
        self.filters.changed.connect(lambda *_: self.filters_changed())
        self.splitter.setSizes([600, 350])
        # what the files lost (cut or damaged), in sight above everything until closed
        self.loss_banner = LossBanner()
        self.loss_banner.set_losses(session_losses(self.session))
        central = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.loss_banner)
        col.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.vcpu_panel = VcpuMapPanel()
        self.sync_panel = SyncPanel()
        docks = []
        for title, w in (("VCPU map", self.vcpu_panel), ("Time sync", self.sync_panel)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(w)
            self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
            dock.setVisible(bool(self.session.guests))  # nothing to map or sync on a host-only trace
            docks.append(dock)
        self.docks = docks
        self._size_docks()
        self.status = self.statusBar()
        self.timeline.hovered.connect(self.status.showMessage)
        self.timeline.rowClicked.connect(self._on_row_clicked)
        self.timeline.timeDoubleClicked.connect(self._on_double_click)
        self.vcpu_panel.pairActivated.connect(self.scroll_to_pair)
        self.vcpu_panel.editRequested.connect(self.edit_vcpu_map)
        for w in self.session.warnings:
            self.status.showMessage(w, 8000)

    def nav_toolbar(self) -> QtWidgets.QToolBar:
        """Zoom and pan buttons for :attr:`timeline` (the loaded one or the preview's)."""
        tb = QtWidgets.QToolBar()
        tb.setIconSize(QtCore.QSize(16, 16))
        self.act_zoom_in = tb.addAction("+", lambda: self.timeline.zoom(2.0))
        self.act_zoom_out = tb.addAction("-", lambda: self.timeline.zoom(0.5))
        tb.addAction("Fit", self.timeline_fit)
        tb.addAction("<", lambda: self.timeline.pan(-0.25))
        tb.addAction(">", lambda: self.timeline.pan(0.25))
        rb = tb.addAction("Zoom to selection")
        rb.setCheckable(True)
        rb.toggled.connect(lambda on: setattr(self.timeline, "rubber_band", on))
        self.timeline.rubberBandDone.connect(lambda: rb.setChecked(False))  # one zoom per click, as KernelShark
        self.act_rubber = rb
        return tb

    def _size_docks(self) -> None:
        self.resizeDocks(self.docks, [360, 360], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks(self.docks, [200, 500], QtCore.Qt.Orientation.Vertical)

    def _toolbar(self) -> QtWidgets.QToolBar:
        tb = self.nav_toolbar()
        tb.addSeparator()
        tb.addAction("Add task row...", self.add_task_dialog)
        tb.addAction("Clear highlight", self.clear_highlight)
        return tb

    def timeline_fit(self) -> None:
        self.timeline.zoom_to_fit()

    def _build_menus(self) -> None:
        m = self.menuBar()
        f = m.addMenu("&File")
        f.addAction("&Open trace...", self.open_dialog, QtGui.QKeySequence.StandardKey.Open)
        f.addAction("&Append guest trace...", self.append_dialog, "Ctrl+A")
        f.addSeparator()
        f.addAction("&Export session...", self.export_session_dialog)
        f.addAction("&Import session...", self.import_session_dialog)
        f.addSeparator()
        f.addAction("Save &screenshot...", self.screenshot_dialog)
        f.addAction("&Close window", self.close, QtGui.QKeySequence.StandardKey.Close)
        # Quit ends the app (every window), as in KernelShark; Close window closes this one
        f.addAction("&Quit", QtWidgets.QApplication.closeAllWindows, QtGui.QKeySequence.StandardKey.Quit)
        p = m.addMenu("&Plots")
        p.addAction("&CPUs...", self.cpu_plots_dialog)
        p.addAction("&Tasks...", self.task_plots_dialog)
        p.addAction("Add task &row...", self.add_task_dialog)
        p.addAction("&Zoom to fit", self.timeline_fit, "Home")
        flt = m.addMenu("Fi&lter")
        for label, cls in (("Show &events...", fd.EventFilterDialog), ("Show &tasks...", None),
                           ("Show &CPUs...", fd.CpuFilterDialog), ("Show &streams...", fd.StreamFilterDialog),
                           ("&Field filter...", fd.FieldFilterDialog)):
            flt.addAction(label, lambda cls=cls: self.filter_dialog(cls))
        flt.addSeparator()
        a_graph = flt.addAction("Apply filters to &graph")
        a_graph.setCheckable(True)
        a_graph.setChecked(self.filters.apply_to_graph)
        a_graph.toggled.connect(lambda on: setattr(self.filters, "apply_to_graph", on))
        a_list = flt.addAction("Apply filters to &list")
        a_list.setCheckable(True)
        a_list.setChecked(self.filters.apply_to_list)
        a_list.toggled.connect(lambda on: setattr(self.filters, "apply_to_list", on))
        flt.addAction("C&lear all filters", self.filters.clear)
        t = m.addMenu("&Tools")
        t.addAction("&Record...", self.record_dialog, "Ctrl+R")
        t.addAction("Add time &offset...", self.time_offset_dialog)
        from .sqlconsole import show_sql_console
        t.addAction("S&QL console", lambda: show_sql_console(self), "Ctrl+L")
        from .cachesetting import add_action as add_cache_action

        t.addSeparator()
        add_cache_action(t)
        from .latencytools import LatencyTools
        from .vmanalyses import VmAnalyses

        self.vm_analyses = VmAnalyses(self, self.analysis)
        an = next((a.menu() for a in m.actions() if a.menu() and a.menu().title().replace("&", "") == "Analysis"),
                  None) or m.addMenu("&Analysis")
        self.latency_tools = LatencyTools(self, self.analysis)  # scheduling latency, latency and field plots
        self.latency_tools.add_actions(an)
        self.vm_analyses.add_actions(an)

    def _fill_panels(self) -> None:
        self.vcpu_panel.set_data(self.session, self.vcpu_map, self.names)
        self.sync_panel.set_data(self.session, causality_by_vcpu(self.session, self.vcpu_map))

    def set_user_vcpu_map(self, user_map: dict[str, dict[int, int]]) -> None:
        """Apply a user VCPU map: rebuild the mapping (record and kvm_entry still win) and the rows."""
        self.user_map = {g: dict(m) for g, m in user_map.items()}
        self.vcpu_map = build_vcpu_map(self.session, self.user_map)
        self.model.set_vcpu_map(self.vcpu_map)  # the shown CPUs and tasks stay
        self._fill_panels()
        self.analysis.invalidate()

    def edit_vcpu_map(self) -> None:
        dlg = VcpuMapDialog(self.session, self.vcpu_map, self.names, self)
        if dlg.exec():
            self.set_user_vcpu_map(dlg.result_map)

    # -- interaction --------------------------------------------------------------------------
    def _row_of_pair(self, guest: str, vcpu: int) -> list[int]:
        return [i for i, r in enumerate(self.model.rows) if r.guest == guest and r.vcpu == vcpu]

    def scroll_to_pair(self, guest: str, vcpu: int) -> None:
        """A VCPU map line: scroll the pair's rows into view (row heights stay) and highlight it."""
        self.timeline.ensure_rows_visible(self._row_of_pair(guest, vcpu))
        self.highlight_pair(guest, vcpu)

    def highlight_pair(self, guest: str, vcpu: int) -> None:
        """Highlight a VCPU pair's rows and its host thread's runs; the rows do not move."""
        if self._row_of_pair(guest, vcpu):
            self.view.set_highlight((guest, vcpu))

    def _show_highlight(self, pair: tuple[str, int] | None) -> None:
        """The view state's highlighted pair changed: draw it (or nothing)."""
        rows = self._row_of_pair(*pair) if pair is not None else []
        if not rows:
            self._highlight([], None, None)
            return
        host_row = next((self.model.rows[i] for i in rows if self.model.rows[i].kind == "vcpu_host"), None)
        self._highlight(rows, host_row.stream if host_row else None, host_row.pid if host_row else None)

    def _highlight(self, rows: list[int], stream: int | None, pid: int | None) -> None:
        self.model.highlight_pid = (stream, pid) if pid is not None else None
        self.timeline.highlight_rows(rows)
        self.timeline.schedule()

    def clear_highlight(self) -> None:
        """No pair highlighted, and no rows an analysis highlighted either."""
        if not self.view.set_highlight(None):
            self._highlight([], None, None)

    def _on_row_clicked(self, row: int, ts: int) -> None:
        """A VCPU row highlights its pair and the host thread's runs; a host CPU row showing a VCPU
        thread highlights that thread's VCPU pair (the reverse direction)."""
        r = self.model.rows[row]
        if r.guest is not None:
            self.highlight_pair(r.guest, r.vcpu)
            return
        if r.kind == "cpu" and r.intervals is not None:
            pid = int(r.intervals.at(np.array([ts]))[0])
            pair = next((m for m in self.vcpu_map if m.host_pid == pid), None)
            if pair is not None and self.session.streams[r.stream].role == "host":
                self.highlight_pair(pair.guest, pair.vcpu)
                return
        self.clear_highlight()
        self.set_marker(self.view.active_marker, ts)

    def _on_double_click(self, row: int, ts: int) -> None:
        """Select the clicked row's event nearest the click (its CPU's, task's...): the marker
        goes to that event's time and the list selects it."""
        hit = self.model.nearest_event(row, ts)
        if hit is None:
            return
        stream, pos, ets = hit
        self.set_marker(self.view.active_marker, ets)
        m = self.model.merged_index(stream, pos)
        if m >= 0:  # hidden from the list by a filter: the nearest listed event in time
            self.event_list.select_merged_index(m)
        else:
            self.event_list.select_time(ets)

    def _on_list_selected(self, merged_index: int, ts: int) -> None:
        """A list row sets the active marker; when its time is off screen the graph moves to centre it
        (same zoom), as KernelShark's graph follows the table."""
        self.set_marker(self.view.active_marker, ts)
        t0, t1 = self.timeline.view_range()
        if not t0 <= ts <= t1:
            half = (t1 - t0) // 2
            self.timeline.set_range(ts - half, ts + half)

    def set_marker(self, name: str, ts: int | None) -> None:
        """Put marker ``name`` at ``ts`` (None: remove it); the graph, the marker bar and the
        analysis panels follow the view state."""
        self.view.set_marker(name, ts)

    def add_task_dialog(self) -> None:
        items = task_choices(self.session, self.names)
        item, ok = QtWidgets.QInputDialog.getItem(self, "Add task row", "Task:", items, 0, True)
        if not ok:
            return
        try:
            stream, pid = parse_task_choice(item, self.session, self.names)
        except ValueError as e:  # the combo is editable: typed text may name no task
            QtWidgets.QMessageBox.warning(self, "Add task row", str(e))
            return
        self.add_task_row(stream, pid)

    def filter_dialog(self, cls) -> None:
        dlg = fd.TaskFilterDialog(self.session, self.filters, self.tasks, self) if cls is None \
            else cls(self.session, self.filters, self)
        dlg.exec()

    def add_task_row(self, stream: int, pid: int) -> None:
        self.model.add_task_row(stream, pid)

    def cpu_plots_dialog(self) -> None:
        from .plotdialogs import CpuPlotsDialog

        CpuPlotsDialog(self.model, self).exec()

    def task_plots_dialog(self) -> None:
        from .plotdialogs import TaskPlotsDialog

        TaskPlotsDialog(self.model, self.names, self).exec()

    def filters_changed(self) -> None:
        """Filters changed: ticks and the list follow."""
        self.model.refresh_events()
        self.timeline.schedule()

    # -- files and sessions ----------------------------------------------------------------------
    def open_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Open trace", "", "trace-cmd files (*.dat)")
        if paths:
            self.openRequested.emit(OpenRequest(paths, dict(self.user_map)))

    def append_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Append guest trace", "", "trace-cmd files (*.dat)")
        if paths:  # the new window replaces this one once it is loaded
            self.openRequested.emit(OpenRequest(self.paths + paths, dict(self.user_map), replace=self))

    def session_state(self) -> SessionState:
        """This window as a session file (KernelShark's layout, see :mod:`kshark_py.model.sessionfile`)."""
        state = sf.capture(self.session, self.model, self.filters, self.vcpu_map)
        old = getattr(self, "_imported", None) or SessionState(files=[])
        for s in state.streams:  # KernelShark-only settings of a stream we read: written back as read
            prev = next((o for o in old.streams if o.buffer == s.buffer and os.path.realpath(o.file)
                         == os.path.realpath(s.file)), None)
            s.plugins = prev.plugins if prev is not None else None
        state.extra = dict(old.extra)
        view = self.view
        state.range, state.bins = view.range or self.timeline.view_range(), max(1, self.timeline.pixel_width())
        rows = None
        ks = sf.kernelshark_streams(self.session, state)
        for name, t in view.markers.items():
            if t is not None:
                rows = rows or sf.EntryRows(self.session, ks)
                state.markers[name], state.marker_rows[name] = t, rows.row_of(t)
        state.active_marker = view.active_marker
        state.highlight = view.highlight
        if hasattr(self, "latency_tools"):  # the analyses of a loaded window
            state.panels = {**self.latency_tools.panels_state(), **self.vm_analyses.panels_state()}
        state.window = "FullScreen" if self.isFullScreen() else (self.width(), self.height())
        sizes = self.splitter.sizes()
        state.splitter = (sizes[0], sizes[-1])
        table = self.event_list.table
        top = table.rowAt(0)
        if top > 0:
            ts = int(self.session.merged().ts[self.event_list.model.merged_index(top)])
            state.view_top = (rows or sf.EntryRows(self.session, ks)).row_of(ts)
        return state

    def apply_state(self, state: SessionState) -> None:
        """Show what a session file says: time offsets first (they move everything), then rows,
        filters, range, markers, window and pane sizes, the list's first row."""
        self._imported = state
        warnings = list(state.warnings)
        matched = sf.match_streams(self.session, state)
        # a stream the file gives no offset keeps its own (--time-offset on the command line)
        offsets = {i: s.time_offset for i, (_, s) in matched.items()
                   if s.time_offset and s.time_offset != self.session.time_offsets.get(i, 0)}
        if offsets:
            for i, ns in offsets.items():
                self.session.set_time_offset(i, ns)
            self._times_changed()
        warnings += sf.restore(self.session, state, self.model, self.filters)
        self.filters_changed()
        if state.window == "FullScreen":
            self.showFullScreen()
        elif state.window is not None:
            self.resize(*state.window)
        if state.splitter is not None and sum(state.splitter) > 0:
            self.splitter.setSizes(list(state.splitter))
        if state.range and state.range[1] > state.range[0]:
            self.view.set_range(*state.range)
        rows = None
        ks = sf.kernelshark_streams(self.session, state)
        for name in ("A", "B"):
            t = state.markers.get(name)
            if t is None and state.marker_rows.get(name) is not None:
                rows = rows or sf.EntryRows(self.session, ks)
                t = rows.time_of(state.marker_rows[name])
            self.set_marker(name, t)
        self.view.set_active_marker("A" if state.active_marker == "A" else "B")
        if state.highlight is not None:
            self.highlight_pair(*state.highlight)  # a pair whose rows are not shown: nothing
        if hasattr(self, "latency_tools"):
            for stream, event, fld in sf.field_rows_of(self.session, state):
                self.latency_tools.add_field_row(stream, event, fld, warn=warnings.append)
            self.latency_tools.restore_panels(state.panels, warnings.append)
            self.vm_analyses.restore_panels(state.panels)
        if state.view_top:
            t = (rows or sf.EntryRows(self.session, ks)).time_of(state.view_top)
            if t is not None:
                m = self.event_list.model
                k = m.row_at_time(t)
                self.event_list.table.scrollTo(m.index(k, 0), QtWidgets.QAbstractItemView.ScrollHint.PositionAtTop)
        for w in warnings:
            self.status.showMessage(w, 8000)

    def time_offset_dialog(self) -> None:
        from .timeoffset import TimeOffsetDialog

        dlg = TimeOffsetDialog(self.session, self)
        if dlg.exec() and dlg.result_value is not None:
            self.set_time_offset(*dlg.result_value)

    def set_time_offset(self, stream: int, ns: int) -> None:
        """Tools > Add time offset: put one stream ``ns`` later (absolute; 0 undoes it)."""
        if ns == self.session.time_offsets.get(stream, 0):
            return
        self.session.set_time_offset(stream, ns)
        self._times_changed()

    def replace_session(self, session: Session) -> None:
        """Show ``session`` instead: the same recording's next live tables or its files after Stop
        (ui/capturelive.py).  Rows, filters and markers stay; the range is refitted (the caller may set it)."""
        self.session = session
        self.model.session = session
        self.analysis.session = session
        self._times_changed()

    def _times_changed(self) -> None:
        """A stream's times moved: rebuild what holds times (rows, task index, event list, VCPU
        map and panels) from the session; the shown rows, filters and markers stay."""
        self.tasks = TaskIndex(self.session)
        self.sources = RowSources(self.session, self.names, mask=self._mask)
        self.vcpu_map = build_vcpu_map(self.session, self.user_map)
        self.model.set_sources(self.sources, self.vcpu_map)
        from .eventlist import EventListView

        old = self.event_list
        self.event_list = EventListView(self.session, self.filters, self.tasks)
        self.event_list.rowSelected.connect(self._on_list_selected)
        self.event_list.taskPlotRequested.connect(self.add_task_row)
        self.splitter.replaceWidget(self.splitter.indexOf(old), self.event_list)
        old.deleteLater()
        self._fill_panels()
        self.analysis.invalidate()
        t = self.session.merged().ts
        if len(t):
            self.timeline.set_full_range(int(t.min()), int(t.max()))
            self.timeline.zoom_to_fit()

    def export_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export session", "session.json", "JSON (*.json)")
        if path:
            save_session(self.session_state(), path)

    def import_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Import session", "", "JSON (*.json)")
        if path:
            try:
                state = load_session_file(path)
            except SessionFileError as e:
                QtWidgets.QMessageBox.critical(self, "Import session", str(e))
                return
            self.openRequested.emit(OpenRequest(list(state.files), dict(state.vcpu_map), state, replace=self))

    def screenshot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "kshark-py.png", "PNG (*.png)")
        if path:
            self.grab().save(path)

    def record_dialog(self) -> None:
        from .capturepanel import CaptureDialog

        dlg = CaptureDialog(self, live_window=MainWindow)
        # a new recording brings its own VCPU map (GUEST records, kvm): not this window's
        dlg.filesRecorded.connect(lambda files: self.openRequested.emit(OpenRequest(list(files))))
        dlg.liveWindowOpened.connect(self.windowOpened.emit)
        dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dlg.show()  # not modal: the live window it opens takes zooms and clicks while recording
        self.capture_dialog = dlg


