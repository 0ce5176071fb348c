"""The root of tagger's own errors: a problem a user can act on (a bad option, file, row, template or answer).

The command line catches `TaggerError` and prints its message as one line; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class TaggerError(Exception):
    """Something the user can fix, said in one line that names what and where."""
