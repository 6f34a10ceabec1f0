"""User-facing errors.

Anything raised as a :class:`UserError` is reported by the command line as one line on stderr
with exit code 2 and no traceback (``--debug`` shows it). Raise it where bad input enters, with
a message that says what is wrong and how to fix it.
"""


class UserError(Exception):
    """Bad input from the user (config, flags, files). Exit code 2 on the command line."""

    exit_code = 2


class ConfigError(UserError):
    """A config value is missing, unknown or out of range."""


class DataError(UserError):
    """A dataset cannot be found or read."""


class MissingDependencyError(UserError):
    """An optional dependency is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package: pip install 'neuroprune[{extra}]'"
        )
