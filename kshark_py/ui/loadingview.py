"""A main window while its load runs: the page-header preview, progress and cancel.

The load's worker hands over a :class:`~kshark_py.model.preview.Preview` as soon as the files are
open and their page headers read (well before any event is decoded); the window shows it at once
through the ordinary timeline widget (zoom, pan, fit, rubber band all work), with the load's
progress and a Cancel button in the status bar.  As the reader delivers decoded rows
(``Preview.add_rows``, from the loading thread) the rows fill in with the exact counts from the left
and the event list below (:mod:`kshark_py.ui.partiallist`) grows with the first stream's events (its
first million: the caption counts the rest, the loaded window lists them); the
hand-over is a queued Qt signal, so the GUI thread alone touches the widgets.  When the load ends the
window builds its full contents (``MainWindow.finish_load``) and this view goes.  Cancelled, the
preview and the rows decoded so far stay, saying so.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from ..model.preview import Preview, PreviewModel
from ..model.session import Session
from ..model.viewstate import ViewState
from ..plots.timeline import TimelineWidget
from .partiallist import PartialListView

PREVIEW_NOTE = ("Preview while the events decode: the exact time range; each CPU's activity estimated from a "
                "sample of its ring-buffer pages (faint), red where those pages lost events. The rows fill in "
                "with the decoded events from the left (solid), the list below with the first stream's; zoom "
                "and pan work now.")


class LoadingView(QtCore.QObject):
    """What a main window shows and offers until its session is loaded."""

    _rowsDelivered = QtCore.Signal(int)  # emitted in the loading thread, received queued in the GUI thread

    def __init__(self, window: QtWidgets.QMainWindow, preview: Preview, cancel: Callable[[], None] | None) -> None:
        """``window``: the main window (it gives :meth:`nav_toolbar` and takes the preview's timeline
        as its ``timeline``); ``cancel`` stops the load."""
        super().__init__(window)
        self.window = window
        self.preview = preview
        self._cancel_load = cancel
        self._cancelled = False
        self.model = PreviewModel(preview)
        self.view = ViewState()
        tl = window.timeline = TimelineWidget(self.model, self.view)
        top = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(top)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(window.nav_toolbar())
        self.note = QtWidgets.QLabel(PREVIEW_NOTE)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("background: #fff4c2; padding: 3px;")
        lay.addWidget(self.note)
        row = QtWidgets.QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(tl, 1)
        row.addWidget(tl.vscroll_box)
        lay.addLayout(row, 1)
        self.event_list = PartialListView(preview.streams[0]) if preview.streams else None
        """The first stream's decoded rows (None: the files have no stream)."""
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.event_list if self.event_list is not None else QtWidgets.QLabel("No events."))
        splitter.setSizes([600, 350])
        window.setCentralWidget(splitter)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(320)
        self.bar.setValue(0)
        self.bar.setFormat("decoding events  %p%")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        sb = window.statusBar()
        sb.addPermanentWidget(self.bar)
        sb.addPermanentWidget(self.cancel_button)
        tl.hovered.connect(sb.showMessage)
        f = self.menu = window.menuBar().addMenu("&File")
        self.act_cancel = f.addAction("C&ancel loading", self.cancel, QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape))
        f.addAction("&Close window", window.close, QtGui.QKeySequence.StandardKey.Close)
        tl.rows_changed()
        full = preview.full_range
        if full is not None:
            tl.set_full_range(*full)
            tl.zoom_to_fit()
        self.fit_range = self.view.range
        """The range the preview opened with: a different one at the end is the user's."""
        self._rowsDelivered.connect(self._rows_delivered, QtCore.Qt.ConnectionType.QueuedConnection)
        preview.delivered.connect(self._relay)
        QtCore.QTimer.singleShot(0, tl.setFocus)  # +, -, arrows and Home work at once
        QtCore.QTimer.singleShot(300, _import_the_list)

    def user_range(self) -> tuple[int, int] | None:
        """The range the user zoomed or panned to, None if they did not."""
        r = self.view.range
        return r if r is not None and r != self.fit_range else None

    def chosen_event(self, session: Session) -> tuple[int, bool] | None:
        """Where the user was in the loading list, as a merged index of the loaded ``session``:
        (the selected row, True), else (the top row if they scrolled, False); None if neither."""
        lst = self.event_list
        if lst is None or lst.model.rowCount() == 0:
            return None
        cur = lst.table.selectionModel().selectedRows()
        row, picked = (cur[0].row(), True) if cur else (lst.table.rowAt(0), False)
        if row < 0 or (row == 0 and not picked):
            return None
        k = session.merged().index_of(lst.model.stream.index, row)
        return (k, picked) if k >= 0 else None

    def progress(self, value: int, total: int, msg: str) -> None:
        self.bar.setMaximum(max(1, total))
        self.bar.setValue(value)
        self.bar.setFormat(f"{msg}  %p%")

    def _relay(self, index: int) -> None:
        """(The loading thread.) Hand the delivery to the GUI thread."""
        try:
            self._rowsDelivered.emit(index)
        except RuntimeError:  # the window went while its load ran: nobody to tell
            pass

    def _rows_delivered(self, index: int) -> None:
        """The reader delivered rows of stream ``index`` (queued from the loading thread)."""
        if self.window.loading is not self:  # a late one, after the loaded window replaced this view
            return
        if self.event_list is not None and index == self.event_list.model.stream.index:
            self.event_list.refresh()
        self.window.timeline.schedule()

    def stream_decoded(self, index: int) -> None:
        """Stream ``index`` is decoded: its rows now count its events."""
        name = next((s.name for s in self.preview.streams if s.index == index), str(index))
        self.window.statusBar().showMessage(f"{name}: events decoded", 4000)
        self.window.timeline.schedule()

    def cancel(self) -> None:
        """Stop the load (the worker ends at its next step); the preview stays."""
        if self._cancel_load is not None:
            self._cancel_load()

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancelled(self) -> None:
        """The load ended without a session: say what the window still shows."""
        self._cancelled = True
        self._cancel_load = None
        self.bar.hide()
        self.cancel_button.hide()
        self.act_cancel.setEnabled(False)
        self.preview.delivered.disconnect(self._relay)
        if self.event_list is not None:
            self.event_list.refresh()
            self.event_list.set_caption("loading cancelled: no more rows come")
        self.note.setText("Loading cancelled: the page-header preview (faint) and the events decoded before the "
                          "cancel (solid, and in the list) stay. File > Close window, or open the file again to "
                          "load it.")

    def dismantle(self) -> None:
        """Take this view's status bar widgets and menus out of the window (its central widget is
        replaced by the loaded one)."""
        self.preview.delivered.disconnect(self._relay)
        sb = self.window.statusBar()
        sb.clearMessage()
        for w in (self.bar, self.cancel_button):
            sb.removeWidget(w)
            w.deleteLater()
        self.window.menuBar().clear()
        self.act_cancel.setShortcut(QtGui.QKeySequence())  # Esc is the loaded window's again
        self.menu.deleteLater()


def _import_the_list() -> None:
    """While the worker decodes (the GUI thread idles): the event list's modules, which the window
    imports only when it builds the list, so that build is that much shorter."""
    from . import eventlist  # noqa: F401
