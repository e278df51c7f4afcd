"""User-facing errors: the CLI prints these as one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SemsegError(Exception):
    """An error caused by the user's input (files, arguments, configs), with a fix hint."""


class CalibrationError(SemsegError, ValueError):
    """A calibration file or matrix is missing, malformed or unusable."""


def unknown_choice(what: str, value: object, choices: Iterable[object], source: str = "") -> SemsegError:
    """A one-line error for `value` not among `choices`: the closest few by difflib.get_close_matches (Ratcliff/
    Obershelp similarity >= 0.6), and all choices only when there are at most 8 of them; `source` says where the
    full list is, e.g. "segmentation_models_pytorch's encoders"."""
    options = list(choices)
    names = [str(c) for c in options]
    close = difflib.get_close_matches(str(value), names, n=3)
    listed = ", ".join(map(repr, options)) if len(options) <= 8 else f"the {len(options)} {source or 'choices'}"
    text = f"{what}: {value!r} is not one of {listed}"
    if close:
        quoted = [repr(c) for c in close]
        text += "; did you mean " + (f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]) + "?"
    elif len(options) > 8:
        text += f" (e.g. {', '.join(names[:3])})"
    return SemsegError(text)
