"""Backbones (with their preprocessing and layer groups) and heads."""
from .backbone import Body, WeightsNotAvailable, create_body, create_imagenet_model, offline_weights_path, read_weights_file
from .heads import ConcatPool, create_head
from .registry import (
    DEFAULT_ARCH,
    Arch,
    Preprocessing,
    available_archs,
    convnext_tiny,
    efficientnet_b0,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    get_arch,
    mobilenetv3_large,
    register,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnext50,
)

__all__ = [
    "Arch", "Body", "ConcatPool", "DEFAULT_ARCH", "Preprocessing", "WeightsNotAvailable", "available_archs",
    "convnext_tiny", "create_body", "create_imagenet_model", "create_head", "efficientnet_b0", "efficientnet_lite0", "efficientnet_lite1",
    "efficientnet_lite2", "get_arch", "mobilenetv3_large", "offline_weights_path", "read_weights_file", "register",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnext50",
]
