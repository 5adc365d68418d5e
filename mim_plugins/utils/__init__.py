from .errors import MissingFileError, UserInputError
from .stack import StackError, check_stack

__all__ = ['MissingFileError', 'StackError', 'UserInputError', 'check_stack']
