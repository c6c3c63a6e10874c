"""Imaging: the one decode path (:mod:`visiontune.imaging.decode`, under the caps and rules of
:mod:`visiontune.imaging.limits`; :mod:`visiontune.imaging.probe` checks files without keeping pixels,
:mod:`visiontune.imaging.aspect` bounds thin images) and the one definition of the evaluation and TTA
views (:mod:`visiontune.imaging.views`). Needs only numpy and Pillow, no torch.

Every image visiontune reads (datasets, predict, submit, inspect, the report, ``ExportedModel`` and the
Python API) is decoded by :func:`~visiontune.imaging.decode.open_image`: raster formats only, regular
files only, byte and pixel caps, EXIF orientation, RGB.
"""
from ..utils.lazy import lazy_exports

_EXPORTS = {
    ".decode": ("open_image",),
    ".limits": ("DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "PIL_FORMATS", "ImageLoadError",
                "open_regular", "read_bytes"),
    ".probe": ("image_header", "probe_image", "probe_images"),
    ".views": ("MAX_TTA_VIEWS", "TTA_ZOOM", "VIEW_NAMES", "tta_views", "view_image"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
