"""Lesson 1, part 2 of the notes: dog breeds from a labels CSV, on dog_breeds_sample.

    python examples/dog_breeds.py [--data ../shared/datasets/dog_breeds_sample] [--quick] [--out DIR]

from_csv + get_cv_idxs, data.resize, precompute with ps=0.5, augmentation with cycle_len=1,
set_data from 224 to 299, TTA with accuracy and log loss, and a Kaggle submission CSV for test/
(an ``id`` column plus one probability column per breed). ``--quick`` trains fewer epochs (for CI).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from visiontune import (ConvLearner, ImageClassifierData, accuracy, efficientnet_lite0, get_cv_idxs, tfms_from_model,
                        transforms_side_on)
from visiontune.utils.atomic import atomic_write_text

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "dog_breeds_sample"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="folder for resized copies and the submission (default: a temp dir)")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="dog_breeds_"))

    PATH, arch, bs = args.data, efficientnet_lite0, 24
    label_csv = f"{PATH}/labels.csv"
    n = len(list(open(label_csv))) - 1
    val_idxs = get_cv_idxs(n)

    def get_data(sz, bs):
        tfms = tfms_from_model(arch, sz, aug_tfms=transforms_side_on, max_zoom=1.1)
        data = ImageClassifierData.from_csv(PATH, "train", label_csv, test_name="test", val_idxs=val_idxs,
                                            suffix=".jpg", tfms=tfms, bs=bs)
        # The dataset folder may be read-only: the shrunk copies go to a writable folder.
        return data if sz > 300 else data.resize(340, str(out / "tmp"))

    data = get_data(224, bs)
    print(f"{len(data.trn_ds)} train, {len(data.val_ds)} valid, {len(data.test_ds)} test, {len(data.classes)} breeds")
    learn = ConvLearner.pretrained(arch, data, precompute=True, ps=0.5, cache_dir=args.cache_dir)
    learn.fit(1e-2, 2)
    learn.precompute = False
    learn.fit(1e-2, 1 if args.quick else 5, cycle_len=1)
    learn.save("224_pre")

    # Progressive resizing: continue on bigger images with the same weights.
    learn.set_data(get_data(299, bs))
    learn.fit(1e-2, 1 if args.quick else 3, cycle_len=1)

    log_preds, y = learn.TTA()
    probs = np.exp(log_preds)
    acc, loss = accuracy(log_preds, y), metrics.log_loss(y, probs, labels=list(range(len(data.classes))))

    test_preds, _ = learn.TTA(is_test=True)
    sub = pd.DataFrame(np.exp(test_preds), columns=data.classes)
    sub.insert(0, "id", [Path(f).stem for f in learn.data.test_ds.fnames])
    sub_path = out / "submission.csv"
    atomic_write_text(sub_path, sub.to_csv(index=False))
    result = {"tta_accuracy": acc, "tta_log_loss": loss, "chance": 1 / len(data.classes), "submission": str(sub_path),
              "submission_rows": len(sub), "submission_columns": sub.shape[1], "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
