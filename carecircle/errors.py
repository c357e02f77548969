"""The one error type a user can cause.

Every loader, the config and the profile raise :class:`InputError` for bad input; the CLI
prints its one-line message and exits with 2 (no traceback).
"""


class InputError(ValueError):
    """Bad input or configuration: the CLI prints the one-line message and exits with 2.

    The message names the file (and the row, column or key) and says what to do.
    """
