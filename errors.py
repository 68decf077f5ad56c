"""The one exception type for bad user input.

A `UserError` carries a one-line message that names the offending field and the allowed values.
The CLI prints it as ``imcflow: error: <message>`` and exits with status 2; nothing else in the
package prints errors for the user. It is a `ValueError`, so library callers can catch either.
"""


class UserError(ValueError):
    """Bad input from the user (a malformed config, an unsupported op, a layer that cannot fit)."""

    exit_code = 2
