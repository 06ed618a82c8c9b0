"""The package's own exceptions: every failure a user can cause names the file and the cause."""

from __future__ import annotations

from pathlib import Path


class SigmaError(Exception):
    """Base class of every error napari-sigma raises on purpose."""


class SpectrumImageError(SigmaError):
    """A file could not be read as an EDS spectrum image or spectrum.

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


class NotASpectrumImageError(SpectrumImageError):
    """The file is readable but holds no spectrum image (it may hold a single spectrum)."""


class AnalysisError(SigmaError):
    """The analysis cannot run with the given data and settings."""


class SigmaFileError(SigmaError):
    """A saved model or session cannot be read: not one, damaged, tampered or of another version.

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
