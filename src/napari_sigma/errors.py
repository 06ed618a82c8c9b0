"""The package's own exceptions: every failure a user can cause names the file and the cause."""

from __future__ import annotations

from pathlib import Path


class SigmaError(Exception):
    """Base class of every error napari-sigma raises on purpose."""


class FileError(SigmaError):
    """A file cannot be used; the message is ``"<file>: <cause>"``.

    Parameters
    ----------
    path : str or Path
        The file that was asked for.
    cause : str
        What is wrong with it, in words a user understands.
    """

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class SpectrumImageError(FileError):
    """A file could not be read as an EDS spectrum image or spectrum."""


class NotASpectrumImageError(SpectrumImageError):
    """The file is readable but holds no spectrum image (it may hold a single spectrum)."""


class AnalysisError(SigmaError):
    """The analysis cannot run with the given data and settings."""


class SigmaFileError(FileError):
    """A saved model or session cannot be read: not one, damaged, tampered or of another version."""


class SettingsError(SigmaError, ValueError):
    """A setting has the wrong type or is out of range (also a ValueError).

    Parameters
    ----------
    field : str or None
        The setting, as a dotted path (``"latent.epochs"``); None when the whole file is wrong.
    cause : str
        What is wrong with it.
    path : str or Path or None
        The settings file, when the settings came from one.
    """

    def __init__(self, field: str | None, cause: str, path: str | Path | None = None) -> None:
        self.field = field
        self.cause = cause
        self.path = None if path is None else Path(path)
        where = [str(p) for p in (self.path, field) if p is not None]
        super().__init__(": ".join([*where, cause]))
