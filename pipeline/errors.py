"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class PipelineError(Exception):
    """Something the user can fix: a missing file, a bad URL, a refused credential, a bad option."""
