"""A read-only, sortable Qt table over an Arrow table (the analysis panels' per-task and worst-N lists).

Sorting is one numpy argsort of the clicked column (numbers as numbers, text as text), kept as a
row permutation: Qt asks for the cells on screen only, so a table of 100,000 wakeups sorts and
scrolls as fast as one of ten.  :meth:`ArrowTableModel.source_row` maps a view row back to the
Arrow row, which is what a click acts on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PySide6 import QtCore, QtWidgets

from ..plots.axes import seconds_text

Qt = QtCore.Qt


def us_text(ns: int) -> str:
    """A duration in µs with three decimals and thousands separators (``1,234.567``)."""
    return f"{ns / 1e3:,.3f}"


@dataclass(frozen=True)
class Column:
    """One shown column: header, Arrow column name, how a value reads."""

    header: str
    name: str
    text: Callable[[object], str] = str
    tip: str = ""


def time_column(header: str, name: str, tip: str = "") -> Column:
    return Column(header, name, lambda v: seconds_text(int(v), 9), tip)


def us_column(header: str, name: str, tip: str = "") -> Column:
    return Column(header, name, lambda v: us_text(int(v)), tip)


class ArrowTableModel(QtCore.QAbstractTableModel):
    """Shows ``table``'s ``columns``; sorts by any column (numbers right-aligned)."""

    def __init__(self, columns: list[Column], parent=None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.table = pa.table({})
        self._values: list[np.ndarray] = []
        self._order = np.zeros(0, np.int64)

    def set_table(self, table: pa.Table, extra: dict[str, Callable[[pa.Table], np.ndarray]] | None = None) -> None:
        """Show ``table``; ``extra`` computes columns the table does not have (a stream's name...)."""
        self.beginResetModel()
        self.table = table
        vals = []
        for c in self.columns:
            if extra and c.name in extra:
                vals.append(np.asarray(extra[c.name](table)))
            else:
                col = table.column(c.name)
                if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                    vals.append(col.to_numpy())
                elif pa.types.is_boolean(col.type):  # a Column's text gets True/False, and sorts them
                    vals.append(col.to_numpy().astype(bool))
                else:
                    vals.append(np.array(["" if v is None else str(v) for v in col.to_pylist()], dtype=object))
        self._values = vals
        self._order = np.arange(table.num_rows)
        self.endResetModel()

    def source_row(self, view_row: int) -> int:
        """The Arrow row shown at ``view_row``."""
        return int(self._order[view_row])

    def view_row(self, source_row: int) -> int:
        hit = np.flatnonzero(self._order == source_row)
        return int(hit[0]) if len(hit) else -1

    def rowCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self._order)

    def columnCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section].tip or None
        return None

    def data(self, index: QtCore.QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        v = self._values[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[index.column()].text(v[self._order[index.row()]])
        if role == Qt.ItemDataRole.TextAlignmentRole and v.dtype != object:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def text(self, view_row: int, column: int) -> str:
        """What cell (view_row, column) shows."""
        return str(self.data(self.index(view_row, column)))

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns) or not len(self._order):
            return
        self.layoutAboutToBeChanged.emit()
        v = self._values[column]
        if order == Qt.SortOrder.DescendingOrder:
            # equal values stay in table order both ways
            o = np.argsort(-v.astype(np.float64), kind="stable") if v.dtype != object else \
                np.argsort(v, kind="stable")[::-1]
        else:
            o = np.argsort(v, kind="stable")
        self._order = o
        self.layoutChanged.emit()


def table_view(model: ArrowTableModel, chosen: Callable[[int], None]) -> QtWidgets.QTableView:
    """A compact, sortable, row-selecting view of ``model``; a click (or Enter) on a row calls
    ``chosen(view row)``."""
    t = QtWidgets.QTableView()
    t.setModel(model)
    t.setSortingEnabled(True)
    t.verticalHeader().setVisible(False)
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)
    t.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setStretchLastSection(True)
    t.clicked.connect(lambda idx: chosen(idx.row()))
    t.activated.connect(lambda idx: chosen(idx.row()))
    return t
