"""mim_plugins: masked image modeling modules for mmpretrain and mmsegmentation.

Importing the package registers every module (configs do it through
``custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)``): the mmpretrain
ones always, the mmsegmentation ones where ``mmseg.models`` imports (both install profiles;
docs/install.md).
"""
from .utils.stack import check_stack

check_stack()

from . import datasets, engine, evaluation, models, parts  # noqa: E402,F401  (registers the modules)

__version__ = '0.1.0'
