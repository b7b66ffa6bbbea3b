"""The model's errors about what a user gave it: each prints as one line (a dialog, or the CLI's
``kshark-py: ...`` with exit status 2). They live apart from the modules that raise them so that
``cli.py`` can catch them by type without importing numpy, pyarrow or the model at start-up."""

from __future__ import annotations


class UserInputError(ValueError):
    """Input from the user (a command-line value, a file they named) that the model cannot use."""


class VcpuMapError(UserInputError):
    """A user-given VCPU map that cannot be parsed."""


class SessionFileError(UserInputError):
    """A session file that cannot be used (one line, for a dialog or the CLI)."""
