"""One root for every failure the inspector knows about.

Each stage raises its own subclass (a config that cannot be used, a camera that cannot be opened,
a model that does not match its manifest, a database the line cannot start on, ...), with a
message that says what is wrong and what to do, written for the person at the line. The command
line prints that message as one line and exits with the class's `exit_code`; anything else is a
bug and keeps its traceback. Subclasses that callers also catch as ValueError/RuntimeError keep
those bases.

Exit codes (the same for every command): 0 done; 1 done, with problems found (a run with
processing errors or a failed camera, doctor's failed checks, an unusable VLM answer); 2 could
not be done: bad input, config or state, refused, said in one line on stderr.
"""

from __future__ import annotations


class InspectorError(Exception):
    exit_code = 2
