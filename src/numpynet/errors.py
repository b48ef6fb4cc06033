"""Errors a user can act on.

Every error raised for bad input (a corrupt download, a malformed file, a wrong parameter, a
diverging loss) derives from :class:`NumpynetError`. Its message names the problem and the fix;
the stage entry points print it without a traceback and exit non-zero.
"""


class NumpynetError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class ConfigError(NumpynetError):
    """``params.yaml`` holds an unknown key, a wrong type or an out-of-range value."""


class DownloadError(NumpynetError):
    """No source delivered a file whose content matches its pinned checksum."""


class DataFormatError(NumpynetError):
    """A data file is malformed: bad magic number, truncated, inconsistent sizes."""


class TrainingDiverged(NumpynetError):
    """The loss became NaN or infinite."""
