"""The exception type for problems the user can fix; its message names the fix."""


class UserInputError(RuntimeError):
    """A problem with the user's config, data, files or installation; the message says the fix.
    Our tools print it as one line instead of a traceback."""


class MissingFileError(UserInputError, FileNotFoundError):
    """A file named by the user (checkpoint, part map, ...) does not exist."""
