# components of this folder are imported here (one file each), which registers them
from .checked_load_image import CheckedLoadImageFromFile  # noqa: F401
from .image_corruption import ImageCorruption  # noqa: F401
