"""Entry points behind tools/: shared by mmpretrain and mmseg configs."""
from .errors import UserInputError, explain, run_cli

__all__ = ['UserInputError', 'explain', 'run_cli']
