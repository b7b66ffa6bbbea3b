"""Floor 3: pyqtgraph items that draw the visualization model (one image for all rows)."""

import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")
