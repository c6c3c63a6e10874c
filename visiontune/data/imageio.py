"""Image decoding lives in :mod:`visiontune.imaging.decode` (the one decode path); these names are
kept here so that earlier imports (``from visiontune.data.imageio import load_image``) keep working."""
from ..imaging.decode import (  # noqa: F401  (re-exported)
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    MAX_ASPECT,
    PIL_FORMATS,
    ImageLoadError,
    aspect_box,
    default_io_workers,
    image_header,
    limit_aspect,
    load_image,
    open_image,
    open_regular,
    probe_image,
    probe_images,
    read_bytes,
)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "MAX_ASPECT", "PIL_FORMATS",
           "ImageLoadError", "aspect_box", "default_io_workers", "image_header", "limit_aspect", "load_image",
           "open_image", "open_regular", "probe_image", "probe_images", "read_bytes"]
