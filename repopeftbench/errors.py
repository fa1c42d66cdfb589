"""Errors a user can fix. The CLI prints them as one line (the traceback only with --debug)."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or environment: the message names the problem and, where it can, the fix."""
