"""kshark-py: trace-cmd file reader, host/guest timelines, capture."""

__version__ = "0.1.0"
