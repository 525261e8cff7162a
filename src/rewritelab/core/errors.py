"""The one exception type for user mistakes.

Anything a user can get wrong (a bad config value, an impossible dataset spec, a missing
directory) raises `RewritelabError` with a message that names the problem; the CLI catches it
once and prints it as a single line. Internal bugs raise anything else and keep their traceback.
"""


class RewritelabError(Exception):
    """A user-facing error: bad input, an impossible spec, or a refused overwrite."""
