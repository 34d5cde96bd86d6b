"""The one base class of user-facing failures.

Contract: every error a user can cause or fix (a wrong recipe, too little data, a corrupt or foreign file, a
tokenizer that does not match, a full disk) is raised as a :class:`MixlabError` subclass whose message says what
is wrong and what to do. The CLI prints that message alone and exits with status 2 (a traceback only with
``-v``); any other exception is a bug in mixlab, printed as one line that says how to get the traceback.
This module imports nothing, so every layer can use it.
"""

from __future__ import annotations


class MixlabError(Exception):
    """A failure the user can fix; the message names the problem and the fix."""


class CorruptOutputError(MixlabError):
    """A stage output (or input) whose bytes differ from the digests recorded when it was written."""


class WorkspaceBusyError(MixlabError):
    """Another process holds a workspace output and did not release it in time."""
