"""User-facing errors: the CLI prints these as one line and exits non-zero."""

from __future__ import annotations


class SemsegError(Exception):
    """An error caused by the user's input (files, arguments, configs), with a fix hint."""


class CalibrationError(SemsegError, ValueError):
    """A calibration file or matrix is missing, malformed or unusable."""
