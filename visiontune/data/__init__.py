"""Data: sources (folders, CSV, arrays), splits, image decoding, resize cache, loaders, inspection."""
from ..utils.lazy import lazy_exports

# Each module loads on first use: decoding needs only numpy + Pillow, sources and inspection torch or pandas.
_EXPORTS = {
    "..imaging.decode": ("DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageLoadError", "load_image", "probe_image", "probe_images"),
    ".inspect": ("format_inspection", "inspect_dataset"),
    ".sources": ("ArraysDataset", "FilesDataset", "ImageClassifierData", "Loader", "SkippedFilesWarning",
                 "UnreadableFilesError", "default_num_workers", "get_cv_idxs"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
