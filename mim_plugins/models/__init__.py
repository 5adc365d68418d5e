"""One file per idea; importing this package registers the models into mmpretrain."""
from . import heads, mask_generators, semmae, supmae  # noqa: F401
