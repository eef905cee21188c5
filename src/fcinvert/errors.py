"""The one exception type a user sees: a clear, one-line message about their input."""


class FcinvertError(Exception):
    """Bad input (file, name, value). The CLI prints the message on one line and exits with 2."""
