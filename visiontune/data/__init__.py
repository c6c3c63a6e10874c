"""Data: sources (folders, CSV, arrays), splits, image decoding, resize cache, loaders, inspection."""
from ..utils.lazy import lazy_exports

# Each module loads on first use: decoding needs only numpy + Pillow, datasets, loaders and inspection torch
# or pandas.
_EXPORTS = {
    "..imaging.decode": ("load_image",),
    "..imaging.limits": ("DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageLoadError"),
    "..imaging.probe": ("probe_image", "probe_images"),
    ".classifier_data": ("ImageClassifierData",),
    ".datasets": ("ArraysDataset", "FilesDataset"),
    ".errors": ("SkippedFilesWarning", "UnreadableFilesError"),
    ".inspect": ("format_inspection", "inspect_dataset"),
    ".loader": ("Loader", "default_num_workers"),
    ".splits": ("get_cv_idxs",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
