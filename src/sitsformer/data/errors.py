"""Exceptions raised by the data layer.

Every error is a :class:`DataError` (a ``ValueError``) whose message says what was expected,
what was found and where (file, key, sample index), so a user can fix the input directly.
"""

from __future__ import annotations


class DataError(ValueError):
    """Base class: the input data cannot be read as asked."""


class SourceNotRecognizedError(DataError):
    """``open_source`` could not tell which kind of source a path is."""


class BandCountError(DataError):
    """The number of bands found differs from the number expected."""


class DateParseError(DataError):
    """A date (in a file name, a timestamps file or a metadata record) could not be parsed."""


class LabelError(DataError):
    """A label is outside the class list, or a label file cannot be used."""


class NoClearDateError(DataError):
    """A sample has no valid (clear, non-nodata) date at all."""


class CorruptFileError(DataError):
    """A file cannot be read: unreadable, truncated or not in the expected format."""


class GeoReferenceError(DataError):
    """Rasters or vectors do not share a usable grid/CRS (e.g. no overlap with the raster)."""


class DataWarning(UserWarning):
    """An assumption was made about the data (e.g. dates unknown); the message says which."""


class InputMismatchError(DataError):
    """Input does not match what a model was trained on (bands, time axis, length, classes)."""
