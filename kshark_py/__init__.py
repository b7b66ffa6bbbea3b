"""kshark-py: trace-cmd file reader, host/guest timelines, capture.

``import kshark_py as ks; s = ks.open("trace.dat", "trace-guest.dat")``: the Python API
(:mod:`kshark_py.api`, docs/api.md).  It is imported on first use of ``ks.open`` /
``ks.TraceSession``, so ``import kshark_py`` (the CLI, the app) stays cheap.
"""

__version__ = "0.1.0"

_API = ("open", "TraceSession", "DataLossError")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'kshark_py' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
