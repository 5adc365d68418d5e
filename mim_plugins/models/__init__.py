"""One file per idea; importing this package registers the models into mmpretrain."""
from . import heads, supmae  # noqa: F401
