"""Data: sources (folders, CSV, arrays), splits, image decoding, resize cache, loaders, inspection."""
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageLoadError, load_image, probe_image, probe_images
from .inspect import format_inspection, inspect_dataset
from .sources import (ArraysDataset, FilesDataset, ImageClassifierData, Loader, SkippedFilesWarning,
                      UnreadableFilesError, default_num_workers, get_cv_idxs)

__all__ = [
    "ImageClassifierData", "get_cv_idxs", "load_image", "probe_image", "probe_images", "ImageLoadError",
    "inspect_dataset", "format_inspection", "FilesDataset", "ArraysDataset", "Loader", "SkippedFilesWarning",
    "UnreadableFilesError", "default_num_workers", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS",
]
