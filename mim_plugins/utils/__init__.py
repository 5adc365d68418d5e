from .stack import StackError, check_stack

__all__ = ['StackError', 'check_stack']
