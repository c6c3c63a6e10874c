"""GPU check: does visiontune keep one GPU busy? Training and precompute speed against a plain PyTorch loop.

For resnet50 and efficientnet_lite0 at 224 px, random-init weights, on generated JPEGs, it measures

* training images/s: one ``fit`` epoch of the unfrozen model on augmented images (after a warm-up epoch);
  visiontune runs its GPU path (``gpu_aug=True``: workers decode + pre-size, augmentation batched on the
  device; ``--cpu-aug`` measures per-image CPU augmentation instead),
* precompute images/s: ``learn.precompute = True`` on a fresh activation cache (train + validation),
* the same two figures for a plain PyTorch loop in the same run (``ImageFolder``-style dataset,
  torchvision transforms, ``DataLoader(pin_memory=True)``, autocast, channels_last, SGD),
* the GPU's utilisation while each runs (``torch.cuda.utilization()``, else ``nvidia-smi``),
* decode + pre-size images/s of the training JPEGs: PIL (draft mode, one CPU thread) and, on CUDA,
  nvJPEG (``visiontune.data.gpu_decode.decode_presized``, batches of ``bs``),

prints one table and writes it to ``docs/benchmarks.md`` between ``<!-- gpu_check:start -->`` and
``<!-- gpu_check:end -->`` (the other sections are kept). Under 5 minutes on a modern GPU::

    python bench/gpu_check.py                 # on a GPU machine
    python bench/gpu_check.py --cpu-smoke     # tiny sizes on the CPU, so the script cannot rot (CI);
                                              # writes bench/results/gpu_check_smoke.md, not the docs
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_MD, REPO, command_line, fmt, md_table, update_section  # noqa: E402

SECTION = "gpu_check"
SMOKE_MD = REPO / "bench" / "results" / "gpu_check_smoke.md"
ARCHS = ("resnet50", "efficientnet_lite0")


# --------------------------------------------------------------------------------------------- setup
def make_jpegs(root: Path, n_train: int, n_valid: int, size: int) -> Path:
    """Two classes of noisy generated JPEGs: ``root/{train,valid}/{a,b}/*.jpg``."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for c, name in enumerate("ab"):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n // 2):
                img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                img[..., c] = np.clip(img[..., c].astype(int) + 60, 0, 255)
                from PIL import Image

                Image.fromarray(img).save(d / f"{i}.jpg", quality=90)
    return root


class UtilSampler:
    """Samples the GPU's utilisation (%) every 0.2 s in a thread; ``mean`` is None off the GPU."""

    def __init__(self, device: torch.device):
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # noqa: BLE001 - needs pynvml; fall back to nvidia-smi
            pass
        if shutil.which("nvidia-smi"):
            idx = self.device.index or 0
            out = subprocess.run(["nvidia-smi", f"--id={idx}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5)
            try:
                return float(out.stdout.strip().splitlines()[0])
            except (ValueError, IndexError):
                return None
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            v = self._read()
            if v is not None:
                self.samples.append(v)
            self._stop.wait(0.2)

    def __enter__(self):
        if self.device.type == "cuda":
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn) -> tuple[float, float | None]:
    """(seconds, mean GPU utilisation %) of ``fn()``."""
    _sync(device)
    with UtilSampler(device) as util:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        seconds = time.perf_counter() - t0
    return seconds, util.mean


# --------------------------------------------------------------------------------------------- visiontune
def bench_visiontune(arch: str, data_path: Path, cfg, device: torch.device) -> dict:
    from visiontune import ConvLearner, ImageClassifierData, tfms_from_model, transforms_side_on

    tfms = tfms_from_model(arch, cfg.size, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(data_path, bs=cfg.bs, tfms=tfms, num_workers=cfg.workers)
    cache = Path(tempfile.mkdtemp(prefix="gpu-check-cache-"))
    learn = ConvLearner.pretrained(arch, data, pretrained=False, precompute=False, cache_dir=cache, device=device,
                                   models_path=cache / "models", verbose=False, compile=cfg.compile,
                                   gpu_aug=not cfg.cpu_aug)
    learn.unfreeze()
    n_trn, n_val = len(data.trn_ds), len(data.val_ds)
    learn.fit(1e-3, 1)  # warm-up: workers, cudnn autotuning, compile
    train_s, train_util = timed(device, lambda: learn.fit(1e-3, 1))
    trained = len(learn.sched.lrs) * data.bs  # images the epoch trained on (drop_last)
    learn.freeze()
    pre_s, pre_util = timed(device, lambda: setattr(learn, "precompute", True))
    shutil.rmtree(cache, ignore_errors=True)
    # the epoch includes one validation pass over n_val images: count its forward-only share as ~1/3 of a step
    return {"aug": "GPU batched" if learn.gpu_aug else "CPU per image",
            "train_img_s": trained / max(train_s - pre_s * n_val / (n_trn + n_val), 1e-9), "train_util": train_util,
            "precompute_img_s": (n_trn + n_val) / pre_s, "precompute_util": pre_util}


# --------------------------------------------------------------------------------------------- decoding
def bench_decode(data_path: Path, cfg, device: torch.device) -> dict:
    """Decode + pre-size images/s of the training JPEGs to ``ceil(size * 1.1)``: PIL, and nvJPEG on CUDA."""
    from visiontune.data.gpu_decode import decode_presized, nvjpeg_available

    files = sorted((data_path / "train").rglob("*.jpg"))
    size = math.ceil(cfg.size * 1.1)

    def run(dev, decoder):
        for i in range(0, len(files), cfg.bs):
            decode_presized(files[i:i + cfg.bs], size, device=dev, decoder=decoder)

    out = {"pil_img_s": len(files) / timed(torch.device("cpu"), lambda: run("cpu", "pil"))[0], "nvjpeg_img_s": None}
    if nvjpeg_available(device):
        run(device, "torchvision")  # warm-up: nvJPEG handles, CUDA kernels
        out["nvjpeg_img_s"] = len(files) / timed(device, lambda: run(device, "torchvision"))[0]
    return out


# --------------------------------------------------------------------------------------------- plain PyTorch
def bench_plain(arch: str, data_path: Path, cfg, device: torch.device) -> dict:
    import timm
    from PIL import Image
    from torchvision import transforms as T

    from visiontune.models.registry import get_arch

    a = get_arch(arch)
    mean, std = a.preprocessing.mean, a.preprocessing.std
    trn_t = T.Compose([T.RandomResizedCrop(cfg.size, scale=(0.35, 1)), T.RandomHorizontalFlip(), T.ToTensor(),
                       T.Normalize(mean, std)])
    val_t = T.Compose([T.Resize(cfg.size), T.CenterCrop(cfg.size), T.ToTensor(), T.Normalize(mean, std)])
    files = sorted((data_path / "train").rglob("*.jpg")) + sorted((data_path / "valid").rglob("*.jpg"))

    class Files(torch.utils.data.Dataset):
        def __init__(self, tf):
            self.tf = tf

        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            return self.tf(Image.open(files[i]).convert("RGB")), int(files[i].parent.name == "b")

    def loader(tf, shuffle):
        return torch.utils.data.DataLoader(Files(tf), batch_size=cfg.bs, shuffle=shuffle, drop_last=shuffle,
                                           num_workers=cfg.workers, pin_memory=device.type == "cuda",
                                           persistent_workers=cfg.workers > 0)

    model = timm.create_model(a.timm_name, pretrained=False, num_classes=2).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    amp = device.type == "cuda"
    trn_dl, val_dl = loader(trn_t, True), loader(val_t, False)

    def train_epoch():
        model.train()
        n = 0
        for x, y in trn_dl:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        return n

    @torch.inference_mode()
    def features():
        model.eval()
        for x, _ in val_dl:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                model.forward_head(model.forward_features(x), pre_logits=True).float().cpu()

    train_epoch()  # warm-up
    counted = {}
    train_s, train_util = timed(device, lambda: counted.setdefault("n", train_epoch()))
    pre_s, pre_util = timed(device, features)
    return {"train_img_s": counted["n"] / train_s, "train_util": train_util,
            "precompute_img_s": len(files) / pre_s, "precompute_util": pre_util}


# --------------------------------------------------------------------------------------------- main
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def render(rows: list[dict], cfg, device: torch.device, seconds: float, decode: dict | None = None) -> str:
    table = md_table(
        ["arch", "pipeline", "augmentation", "train img/s", "GPU util (train) %", "precompute img/s",
         "GPU util (precompute) %"],
        [[r["arch"], r["pipeline"], r.get("aug", "CPU per image"), fmt(r["train_img_s"]), fmt(r["train_util"]),
          fmt(r["precompute_img_s"]), fmt(r["precompute_util"])] for r in rows])
    mode = "CPU smoke run (tiny sizes: the numbers mean nothing)" if cfg.cpu_smoke else "GPU run"
    return "\n".join([
        "## GPU check: visiontune against a plain PyTorch loop",
        "",
        f"{mode}; {dt.date.today().isoformat()}; device: **{device_name(device)}**; torch {torch.__version__}; "
        f"`{command_line()}`; {seconds:.0f} s in all.",
        "",
        f"Random-init weights, {cfg.n_train} generated training JPEGs + {cfg.n_valid} validation at {cfg.size} px, "
        f"batch {cfg.bs}, {cfg.workers} loader workers. Training: one unfrozen epoch on augmented images after a "
        "warm-up epoch (visiontune: `learn.fit` minus its validation pass; plain: SGD + autocast + channels_last, "
        "`DataLoader(pin_memory=True)`). Precompute: visiontune `learn.precompute = True` on a fresh cache "
        "(train + validation); plain: `forward_features` + pooling in inference mode over all images. "
        "visiontune's GPU path (`gpu_aug=True`): the workers only decode and pre-size each image to a "
        "`ceil(sz * 1.1)` square, zoom/rotation/flip/lighting/crop run batched on the device.",
        "",
        table,
    ] + ([] if decode is None else [
        "",
        f"Decode + pre-size of the training JPEGs to {math.ceil(cfg.size * 1.1)} px (`decode_presized`, batches of "
        f"{cfg.bs}): PIL (draft mode, one CPU thread) {fmt(decode['pil_img_s'])} img/s; nvJPEG on the GPU "
        + (f"{fmt(decode['nvjpeg_img_s'])} img/s." if decode["nvjpeg_img_s"] else "n/a (no CUDA)."),
    ]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (CI): checks the script runs")
    p.add_argument("--out", default=None, help="markdown file to update (default docs/benchmarks.md; "
                   "--cpu-smoke: bench/results/gpu_check_smoke.md)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--compile", action="store_true", help="visiontune with compile=True (adds compile time)")
    p.add_argument("--cpu-aug", action="store_true", help="visiontune with gpu_aug=False: per-image augmentation "
                   "in the CPU workers (default: the GPU path, batched augmentation on the device)")
    cfg = p.parse_args(argv)
    if cfg.cpu_smoke:
        device = torch.device("cpu")
        cfg.size, cfg.n_train, cfg.n_valid, cfg.bs, cfg.workers = 32, 8, 4, 4, 0
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    else:
        if not torch.cuda.is_available():
            p.error("no CUDA device here; run with --cpu-smoke to check the script on the CPU")
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        cfg.size, cfg.n_train, cfg.n_valid, cfg.bs = 224, 2048, 256, 128
        cfg.workers = min(12, os.cpu_count() or 1)
    out = Path(cfg.out) if cfg.out else (SMOKE_MD if cfg.cpu_smoke else DEFAULT_MD)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        data_path = make_jpegs(Path(tmp) / "data", cfg.n_train, cfg.n_valid, max(cfg.size + cfg.size // 7, 8))
        for arch in [a.strip() for a in cfg.archs.split(",") if a.strip()]:
            for pipeline, fn in (("visiontune", bench_visiontune), ("plain PyTorch", bench_plain)):
                print(f"{arch} / {pipeline} ...", flush=True)
                row = {"arch": arch, "pipeline": pipeline, **fn(arch, data_path, cfg, device)}
                print("   " + ", ".join(f"{k}={fmt(v)}" for k, v in row.items() if k not in ("arch", "pipeline")),
                      flush=True)
                rows.append(row)
        print("decode + pre-size ...", flush=True)
        decode = bench_decode(data_path, cfg, device)
    body = render(rows, cfg, device, time.perf_counter() - t0, decode)
    print(body)
    update_section(out, SECTION, body)  # re-reads the file and replaces only this section, atomically
    if cfg.json:
        Path(cfg.json).write_text(json.dumps({"device": device_name(device), "rows": rows, "decode": decode}, indent=1))
    print(f"wrote section {SECTION!r} of {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
