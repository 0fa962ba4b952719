"""User-facing errors.

Anything a user can cause (a bad file, a bad field, a bad flag value) raises `BoxerError` with a
one-line message naming the file/field and what is wrong. The CLI prints it without a traceback
and exits non-zero; library callers can catch it.
"""

from __future__ import annotations


class BoxerError(Exception):
    """An error caused by user input; its message is one line and self-explanatory."""

    exit_code: int = 1
