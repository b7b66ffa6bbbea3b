"""Colours of the timeline: the view model's pixel codes mapped to RGBA through lookup tables.

The model (:meth:`kshark_py.model.viewmodel.TimelineModel.render`) says what each image pixel shows
(a ``PX_*`` code, the row's key in that column: a pid, a CPU, a VCPU state) and how opaque it is
(busy fraction, event density, highlight dimming); it knows no colour. :func:`paint` turns that into
the RGBA image the timeline shows: task and CPU colours through a table built for the keys of this
render (``np.unique``, then ``take``), states through a fixed table. Pure numpy, no Qt objects.
"""

from __future__ import annotations

import numpy as np

from ..model.viewmodel import (
    CPU_KEY_SHIFT,
    PX_CPU,
    PX_LOST,
    PX_STATE,
    PX_TASK,
    PX_TICK,
    STATE_ORDER,
    SUBROWS,
    RenderResult,
)

STATE_COLORS = {
    "guest": (46, 160, 67),
    "exit": (230, 126, 34),
    "preempted": (220, 50, 47),
    "halted": (160, 160, 170),
    "unknown": (235, 235, 235),
}
"""The VCPU state lane's colours (also the legend's and the analysis panels')."""
STATE_LUT = np.array([STATE_COLORS[name] for name in STATE_ORDER], np.uint8)
"""RGB by state code (the model's :data:`~kshark_py.model.viewmodel.STATE_ORDER`)."""
TICK_RGB = (50, 50, 50)
"""The event-tick strip (its opacity is the density)."""
LOST_RGB = (220, 20, 60)
"""A lost-events mark."""
GUEST_SHADE = (0.35, 0.65)
"""An in-guest column of a VCPU thread's row: this much of its own colour, this much of the guest's."""


def task_colors(pids: np.ndarray) -> np.ndarray:
    """A stable, well-spread colour per pid (golden-ratio hues), as uint8 RGB; pid 0 is white."""
    pids = np.asarray(pids, np.int64)
    h = (pids * 0.6180339887498949) % 1.0
    s = 0.55 + 0.3 * ((pids * 0.3819660112501051) % 1.0)
    v = np.full(len(pids), 0.88)
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    out = (np.stack([r, g, b], axis=1) * 255).astype(np.uint8)
    out[pids == 0] = 255
    return out


def paint(res: RenderResult) -> np.ndarray:
    """The RGBA image (uint8, lines x pixels x 4) of a render: colours from the codes, alpha as given."""
    kind = res.kind
    key = np.repeat(res.dominant, SUBROWS, axis=0)  # each row's column key on each of its lines
    rgb = np.zeros(kind.shape + (3,), np.uint8)
    for code, shift in ((PX_TASK, 0), (PX_CPU, CPU_KEY_SHIFT)):
        sel = kind == code
        if sel.any():
            uniq, inv = np.unique(key[sel] + shift, return_inverse=True)
            rgb[sel] = task_colors(uniq)[inv.reshape(-1)]
    sel = kind == PX_STATE
    rgb[sel] = STATE_LUT[key[sel]]
    rgb[kind == PX_TICK] = TICK_RGB
    over = res.overlay
    own, guest = GUEST_SHADE
    rgb[over] = (rgb[over] * own + np.array(STATE_COLORS["guest"]) * guest).astype(np.uint8)
    rgb[kind == PX_LOST] = LOST_RGB
    return np.concatenate([rgb, res.alpha[:, :, None]], axis=2)
