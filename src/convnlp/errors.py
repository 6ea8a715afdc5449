"""The one exception type users see: a problem with their input, config or files.

The CLI prints ``convnlp: error: <message>`` and exits with status 2, no traceback. Messages
name the file, line and problem where there is one ("data/train.conllu:12: expected 10 columns").
"""


class UserError(Exception):
    """A problem the user can fix: bad input data, a bad config value, a missing file."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one line (its type where it has no message, e.g. a bare assert), for a
    one-line error that names what a library or the model said."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
