"""User-facing errors.

Every problem a user can fix (bad path, bad option, broken image) is raised as a
``ClipoodError`` whose message is one line naming the thing and what to do. The
CLI prints it without a traceback; anything else is a bug and keeps its traceback.
"""

__all__ = ["ClipoodError", "ConfigError", "DataError", "Interrupted", "ModelError", "NonFiniteLoss"]


class ClipoodError(Exception):
    """A problem with the user's input, reported as one clear line."""


class ConfigError(ClipoodError):
    """An option value is invalid (names the option, the value and what is allowed)."""


class DataError(ClipoodError):
    """The dataset on disk is missing, empty, inconsistent or unreadable."""


class ModelError(ClipoodError):
    """The backbone cannot be created or its weights cannot be loaded."""


class Interrupted(ClipoodError):
    """SIGTERM/SIGINT: the state was checkpointed; the run can be resumed."""


class NonFiniteLoss(ClipoodError):
    """The loss became NaN/inf; the average never saw that step."""
