"""The CLI's own error: a request refused before anything runs (exit code 2)."""


class UsageError(Exception):
    """A request the CLI refuses before doing anything (exit code 2)."""
