"""Loaders that decode in a pool of threads: same batches as worker processes, per-image seeds for views."""
from __future__ import annotations

import torch
from torchvision.transforms import v2
from vt_data_helpers import make_folder_dataset

from visiontune.data import ImageClassifierData
from visiontune.data.loader import Loader
from visiontune.train.learner import ordered_loader
from visiontune.transforms import tfms_from_model, transforms_side_on, transforms_top_down


def _data(tmp_path, aug=transforms_side_on, nw=2):
    root = make_folder_dataset(tmp_path / "d", n_trn=9, n_val=7, size=(60, 44))
    tfms = tfms_from_model("efficientnet_lite0", 32, aug_tfms=aug, max_zoom=1.2)
    return ImageClassifierData.from_paths(root, bs=4, tfms=tfms, num_workers=nw)


def _all(loader) -> torch.Tensor:
    return torch.cat([x for x, _ in loader])


def test_clean_loaders_use_threads_and_match_worker_processes(tmp_path):
    data = _data(tmp_path)
    assert data.val_dl.threaded and data.fix_dl.threaded and not data.trn_dl.threaded
    procs = Loader(data.val_dl.dataset, 4, num_workers=2, normalizer=data.val_tfms, threaded=False)
    assert not procs.threaded
    torch.testing.assert_close(_all(data.val_dl), _all(procs), rtol=0, atol=0)
    raw = torch.cat([x for x, _ in data.val_dl.unnormalized()])
    assert raw.dtype == torch.uint8 and raw.shape == (14, 3, 32, 32)
    torch.testing.assert_close(data.val_tfms.normalize(raw), _all(data.val_dl), rtol=0, atol=0)


def test_augmented_views_depend_on_the_seed_not_on_the_threads(tmp_path):
    data = _data(tmp_path, aug=transforms_top_down)
    views = []
    for threads, seed in ((2, 5), (1, 5), (3, 5), (2, 6)):
        torch.manual_seed(seed)
        loader = ordered_loader(data, "valid", augment=True)
        loader.num_workers = threads
        assert loader.threaded
        views.append(torch.cat([x for x, _ in loader.unnormalized()]))
    assert torch.equal(views[0], views[1]) and torch.equal(views[0], views[2])
    assert not torch.equal(views[0], views[3])  # another seed, other views
    clean = torch.cat([x for x, _ in data.val_dl.unnormalized()])
    assert not torch.equal(views[0], clean)  # they are augmented


def test_custom_random_steps_keep_worker_processes(tmp_path):
    """A torchvision transform draws from torch's global generator: threads would make views order-dependent."""
    data = _data(tmp_path, aug=[v2.RandomHorizontalFlip()])
    assert not data.trn_tfms.item_seedable
    assert not ordered_loader(data, "valid", augment=True).threaded
    assert ordered_loader(data, "valid", augment=False).threaded  # the clean pass has no random step


def test_views_are_fixed_when_the_pass_starts_even_if_another_thread_reads_it(tmp_path):
    """reading_ahead reads a pass in a background thread while the caller builds an engine (which may draw
    from torch's generator): the pass's seed is drawn when it starts, in the caller's thread."""
    from visiontune.features.engine import reading_ahead

    data = _data(tmp_path, aug=transforms_top_down)
    torch.manual_seed(3)
    expected = torch.cat([x for x, _ in ordered_loader(data, "valid", augment=True).unnormalized()])
    after = torch.rand(4)  # what the caller draws next
    torch.manual_seed(3)
    batches = ordered_loader(data, "valid", augment=True).unnormalized()  # the pass starts: its seed is drawn
    assert torch.equal(torch.rand(4), after)  # before its first batch is read
    assert torch.equal(torch.cat([x for x, _ in batches]), expected)

    torch.manual_seed(3)
    loader = ordered_loader(data, "valid", augment=True)
    with reading_ahead(loader, depth=8) as early:
        drawn = torch.rand(4)  # the caller's own draws, racing the reader thread
        got = torch.cat([x for x, _ in early.unnormalized()])
    assert torch.equal(got, expected)
    assert torch.equal(drawn, after)
