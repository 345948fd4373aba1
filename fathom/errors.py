"""The one exception type that the command line turns into a one-line error."""


class FathomError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The command line prints it as a single line and exits with status 2: no traceback.
    """
