"""Images per second for each stage, beside the machine's limit.

    python bench/throughput.py ../shared/datasets/hymenoptera
    python bench/throughput.py DATA --tiny     # a few images and steps: checks the harness

Stages:

(a) decode + augment: visiontune's training loader (``ImageClassifierData.from_paths(...).trn_dl``)
    against torchvision ``ImageFolder`` + a default ``DataLoader`` with equivalent transforms
    (resize, rotation, lighting, random crop, flip; the same batch size and worker count);
(b) precompute end to end: ``ConvLearner.pretrained(..., precompute=True)`` with an empty cache
    (images of train + validation per second, engine chosen by ``'auto'``);
(c) one full fine-tuning step (forward + backward + SGD step), batch 32, channels_last, at 224 px,
    for efficientnet_lite0 and resnet34 (random init), in the precision the learner trains in;
(d) the exported ONNX model (``export_model`` + ``ExportedModel``): single-image latency and batch
    throughput, for the network alone and end to end from JPEG files.

The limit: the measured matrix-multiply rate (``torch.mm`` of 2048 x 2048; bf16 only where the CPU
runs it natively) divided by the model's FLOPs (``torch.utils.flop_counter``, one forward; a
training step counts 3 forwards). "fraction of limit" is measured / limit. For the loaders, the
limit shown is the forward-pass limit of efficientnet_lite0 they feed: a loader below it would be
the bottleneck of a forward pass running at the machine's limit.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SECTION = "throughput"


def _epochs(loader, n_epochs: int) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    for _ in range(n_epochs):
        for x, _y in loader:
            n += x.shape[0]
    return n, time.perf_counter() - t0


def stage_loaders(cfg) -> list[dict]:
    import torch
    from torchvision import datasets
    from torchvision import transforms as T

    import visiontune as vt
    from visiontune.data.loader import default_num_workers

    size, bs = cfg.size, cfg.bs
    data = vt.ImageClassifierData.from_paths(
        cfg.data, bs=bs, val_name=cfg.valid,
        tfms=vt.tfms_from_model(vt.efficientnet_lite0, size, aug_tfms=vt.transforms_side_on, max_zoom=1.1))
    workers = data.trn_dl.num_workers if hasattr(data.trn_dl, "num_workers") else default_num_workers()
    pp = vt.efficientnet_lite0.preprocessing
    tv_tfms = T.Compose([
        T.Resize(round(size * 1.05), interpolation=T.InterpolationMode.BICUBIC),  # mean of zoom U(1, 1.1)
        T.RandomApply([T.RandomRotation(10, interpolation=T.InterpolationMode.BILINEAR)], p=0.75),
        T.ColorJitter(brightness=0.05, contrast=0.05),
        T.RandomCrop(size),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(pp.mean, pp.std),
    ])
    tv_ds = datasets.ImageFolder(str(Path(cfg.data) / "train"), transform=tv_tfms)
    tv_dl = torch.utils.data.DataLoader(tv_ds, batch_size=bs, shuffle=True, num_workers=workers)
    rows = []
    for name, dl in (("visiontune trn_dl", data.trn_dl), ("torchvision ImageFolder + DataLoader", tv_dl)):
        _epochs(dl, 1)  # warm-up: worker start, page cache
        n, secs = _epochs(dl, cfg.loader_epochs)
        rows.append({"stage": "(a) decode + augment", "what": f"{name} ({workers} workers, bs {bs})",
                     "img_per_s": n / secs, "n": n, "seconds": secs, "limit_kind": "lite0 forward"})
    return rows


def stage_precompute(cfg) -> dict:
    import visiontune as vt

    data = vt.ImageClassifierData.from_paths(
        cfg.data, bs=cfg.bs, val_name=cfg.valid,
        tfms=vt.tfms_from_model(vt.efficientnet_lite0, cfg.size, aug_tfms=vt.transforms_side_on, max_zoom=1.1))
    cache = Path(tempfile.mkdtemp(prefix="vt-tp-cache-"))
    try:
        learn = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, precompute=False, cache_dir=cache,
                                          verbose=False)
        t0 = time.perf_counter()
        learn.precompute = True  # computes train + validation activations into the empty cache
        secs = time.perf_counter() - t0
        engine = next(iter(learn._engines.values())).kind if learn._engines else "auto"
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    n = len(data.trn_ds) + len(data.val_ds)
    return {"stage": "(b) precompute, JPEG to cached activations", "what": f"efficientnet_lite0, engine {engine}",
            "img_per_s": n / secs, "n": n, "seconds": secs, "limit_kind": "lite0 forward"}


def stage_train_step(cfg, name: str, flops_fwd: float) -> dict:
    import timm
    import torch
    import torch.nn.functional as F

    from visiontune.train.loop import autocast_context
    from visiontune.utils.hardware import cpu_supports_bf16

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=2).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(cfg.train_bs, 3, cfg.size, cfg.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (cfg.train_bs,))
    amp = cpu_supports_bf16()
    dev = torch.device("cpu")

    def step():
        with autocast_context(dev, amp):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    times = call_seconds(step, cfg.train_steps)
    best = min(times)
    return {"stage": "(c) fine-tuning step (fwd + bwd + SGD)",
            "what": f"{name}, batch {cfg.train_bs}, {cfg.size} px, channels_last, {'bf16 autocast' if amp else 'fp32'}",
            "img_per_s": cfg.train_bs / best, "n": cfg.train_bs * cfg.train_steps, "seconds": sum(times),
            "flops_per_img": 3 * flops_fwd, "median_step_s": statistics.median(times)}


def call_seconds(fn, n: int) -> list[float]:
    """Wall seconds of each of ``n`` calls of ``fn()``."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def stage_exported(cfg, val_paths: list[Path]) -> list[dict]:
    import numpy as np
    import torch
    from torch import nn

    import visiontune as vt
    from visiontune.infer.export import export_model
    from visiontune.infer.exported import ExportedModel
    from visiontune.models.backbone import create_body
    from visiontune.models.heads import ConcatPool, create_head

    torch.manual_seed(0)
    body = create_body(vt.efficientnet_lite0)
    model = nn.Sequential(body, ConcatPool(), create_head(2 * body.num_features, 2)).eval()
    pp = {**vt.efficientnet_lite0.preprocessing.to_dict(), "input_size": cfg.size}
    out_dir = Path(tempfile.mkdtemp(prefix="vt-tp-export-"))
    try:
        export_model(model, out_dir, preprocessing=pp, classes=["a", "b"])
        m = ExportedModel.load(out_dir)
        flops = C.forward_flops(model, (1, 3, cfg.size, cfg.size))
        rng = np.random.default_rng(0)
        one = rng.standard_normal((1, 3, cfg.size, cfg.size)).astype(np.float32)
        batch = rng.standard_normal((cfg.bs, 3, cfg.size, cfg.size)).astype(np.float32)
        for _ in range(3):
            m.predict_batch(one)
        lat = call_seconds(lambda: m.predict_batch(one), cfg.latency_repeats)
        m.predict_batch(batch)
        bt = call_seconds(lambda: m.predict_batch(batch), cfg.batch_repeats)
        files = val_paths[: cfg.latency_repeats]
        m.predict_images([files[0]])
        lat_e2e = []
        for f in files:
            t = time.perf_counter()
            m.predict_images([f])
            lat_e2e.append(time.perf_counter() - t)
        t = time.perf_counter()
        m.predict_images(val_paths, batch_size=cfg.bs)
        e2e_s = time.perf_counter() - t
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    med = statistics.median(lat)
    med_e2e = statistics.median(lat_e2e)
    base = {"flops_per_img": flops}
    return [
        {**base, "stage": "(d) exported ONNX, single image", "what": "network only, 1 image (median latency)",
         "img_per_s": 1 / med, "latency_ms": 1000 * med, "n": len(lat), "seconds": sum(lat)},
        {**base, "stage": "(d) exported ONNX, single image", "what": "JPEG file to probabilities (median latency)",
         "img_per_s": 1 / med_e2e, "latency_ms": 1000 * med_e2e, "n": len(lat_e2e), "seconds": sum(lat_e2e)},
        {**base, "stage": "(d) exported ONNX, batch", "what": f"network only, batch {cfg.bs} (best of {len(bt)})",
         "img_per_s": cfg.bs / min(bt), "n": cfg.bs * len(bt), "seconds": sum(bt)},
        {**base, "stage": "(d) exported ONNX, batch", "what": f"{len(val_paths)} JPEG files, predict_images (one process)",
         "img_per_s": len(val_paths) / e2e_s, "n": len(val_paths), "seconds": e2e_s},
    ]


def render(rows, ceiling, facts, cfg, cmdline, lite0_flops) -> str:
    table = []
    for r in rows:
        flops = r.get("flops_per_img") or lite0_flops
        limit = ceiling["best"] * 1e9 / flops
        lat = f"{r['latency_ms']:.1f} ms" if r.get("latency_ms") is not None else ""
        table.append([r["stage"], r["what"], C.fmt(r["img_per_s"]) + (f" ({lat})" if lat else ""),
                      f"{flops / 1e9:.2f}", C.fmt(limit), f"{r['img_per_s'] / limit:.1%}"])
    return "\n".join([
        *C.section_head("Throughput by stage, beside the machine's limit", cfg.tiny,
                        f"Dataset `{cfg.data_label}`, {cfg.size} px.", cmdline, facts, ceiling),
        C.md_table(["stage", "what", "images/s", "GFLOP per image", "limit images/s", "fraction of limit"], table),
        "",
        "- GFLOP per image: one forward pass counted by `torch.utils.flop_counter` (2 FLOPs per multiply-add); "
        "training steps count 3 forwards. The loader rows (a) and precompute (b) use efficientnet_lite0's body "
        "forward: the rate a forward pass at the machine's limit would consume.",
        "- (a) times whole epochs after one warm-up epoch (workers started, files in the page cache); "
        "building visiontune's data also decodes every file once to find unreadable ones, which is not timed here. "
        "torchvision's transforms: Resize, RandomRotation(10) with p=0.75, ColorJitter(0.05, 0.05), RandomCrop, "
        "RandomHorizontalFlip, ToTensor, Normalize.",
        "- The limit is a dense-GEMM rate; depthwise convolutions (most of efficientnet_lite0's layers) are "
        "memory-bound and cannot reach it, so fractions well under 100% are expected for that network.",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="dataset folder with train/<class>/* and a validation folder")
    ap.add_argument("--valid", default="val")
    ap.add_argument("--size", type=int, default=None, help="default 224 (tiny: 64)")
    ap.add_argument("--tiny", action="store_true", help="a few images and steps: checks the harness")
    ap.add_argument("--stages", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    ap.add_argument("--out", type=Path, default=None, help=C.OUT_HELP)
    ap.add_argument("--json", type=Path, default=None)
    cfg = ap.parse_args(argv)
    cfg.size = cfg.size or (64 if cfg.tiny else 224)
    cfg.bs = 32
    cfg.train_bs = 4 if cfg.tiny else 32
    cfg.train_steps = 1 if cfg.tiny else 3
    cfg.loader_epochs = 1 if cfg.tiny else 2
    cfg.latency_repeats = 3 if cfg.tiny else 20
    cfg.batch_repeats = 2 if cfg.tiny else 5
    cfg.data_label = str(cfg.data)
    stages = set(cfg.stages.split(","))
    cmdline = C.command_line()
    cfg.out = C.resolve_out(cfg.out, cfg.tiny)
    work = Path(tempfile.mkdtemp(prefix="vt-tp-"))
    try:
        if cfg.tiny:
            cfg.data = C.make_tiny_dataset(cfg.data.resolve(), work / "data", per_class=8, splits=("train", cfg.valid))
        import timm
        from torch import nn

        import visiontune as vt
        from visiontune.models.backbone import create_body
        from visiontune.models.heads import ConcatPool

        facts = C.machine_facts()
        ceiling = C.machine_ceiling(tiny=cfg.tiny)
        body = create_body(vt.efficientnet_lite0, pretrained=False)
        lite0_flops = C.forward_flops(nn.Sequential(body, ConcatPool()), (1, 3, cfg.size, cfg.size))
        rows: list[dict] = []
        if "a" in stages:
            print("(a) loaders", flush=True)
            rows += stage_loaders(cfg)
        if "b" in stages:
            print("(b) precompute", flush=True)
            rows.append(stage_precompute(cfg))
        if "c" in stages:
            for name in ("tf_efficientnet_lite0", "resnet34"):
                print(f"(c) train step {name}", flush=True)
                fl = C.forward_flops(timm.create_model(name, pretrained=False, num_classes=2),
                                     (1, 3, cfg.size, cfg.size))
                rows.append(stage_train_step(cfg, name, fl))
        if "d" in stages:
            print("(d) exported model", flush=True)
            val_paths = sorted(p for p in (Path(cfg.data) / cfg.valid).rglob("*")
                               if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            rows += stage_exported(cfg, val_paths)
        for r in rows:
            print(f"  {r['stage']:45s} {r['what'][:60]:60s} {r['img_per_s']:8.1f} img/s", flush=True)
        payload = {"facts": facts, "ceiling": ceiling, "command": cmdline, "tiny": cfg.tiny,
                   "lite0_body_flops": lite0_flops, "rows": rows}
        json_path = cfg.json or (C.REPO / "bench" / "results" / f"throughput{'_tiny' if cfg.tiny else ''}.json")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        C.write_json(json_path, payload)
        C.update_section(cfg.out, SECTION, render(rows, ceiling, facts, cfg, cmdline, lite0_flops))
        print(f"wrote {cfg.out} ({SECTION}) and {json_path}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
