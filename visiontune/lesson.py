"""The lesson's front door: fastai 0.7's names, as thin wrappers over visiontune's plainly named layers.

``ConvLearner`` is :class:`visiontune.train.learner.Learner` plus ``interpret()`` (which needs the report
layer, above ``train``), and the architectures are callable as fastai 0.7's were (``resnet34(True)``
builds the pretrained body). ``visiontune.ConvLearner``, ``visiontune.resnet34``, ... are these.

>>> from visiontune.lesson import ConvLearner, resnet34
>>> resnet34.name, resnet34.preprocessing.input_size, callable(resnet34)
('resnet34', 224, True)
>>> ConvLearner.__mro__[1].__module__
'visiontune.train.learner'
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from .models.backbone import Body, create_body
from .models.registry import Arch, get_arch
from .train.learner import Learner

__all__ = ["ConvLearner", "LessonArch", "convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "efficientnet_lite1",
           "efficientnet_lite2", "mobilenetv3_large", "resnet18", "resnet34", "resnet50", "resnet101", "resnext50"]


class ConvLearner(Learner):
    """The lesson's learner: ``ConvLearner.pretrained(arch, data, precompute=True, ps=0.5)``."""

    def interpret(self, tta: bool = False, n_aug: int = 4):
        """Looking at the validation results: a
        :class:`~visiontune.report.interpret.ClassificationInterpretation` (confusion matrix, most
        confused, top losses, most correct / incorrect / uncertain, per-class precision / recall / F1).

        ``tta=True`` interprets the TTA predictions (``n_aug`` augmented views + the clean one).
        """
        from .report.interpret import ClassificationInterpretation

        return ClassificationInterpretation.from_learner(self, tta=tta, n_aug=n_aug)


@dataclass(frozen=True, eq=False)
class LessonArch(Arch):
    """An :class:`~visiontune.models.registry.Arch` that is also fastai 0.7's model function:
    ``arch(pretrained=True)`` builds the body (the backbone without its classifier)."""

    def __call__(self, pretrained: bool = True, weights: str | None = None) -> Body:
        return create_body(self, weights=weights, pretrained=pretrained)

    def __eq__(self, other) -> bool:  # the same backbone as the registry's plain Arch of that name
        return isinstance(other, Arch) and all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Arch))

    def __hash__(self) -> int:
        return Arch.__hash__(self)  # equal to the plain Arch: the same hash


def lesson_arch(name: str) -> LessonArch:
    """The registered arch ``name``, callable as the lesson's model functions are."""
    arch = get_arch(name)
    return LessonArch(**{f.name: getattr(arch, f.name) for f in fields(Arch)})


convnext_tiny = lesson_arch("convnext_tiny")
efficientnet_b0 = lesson_arch("efficientnet_b0")
efficientnet_lite0 = lesson_arch("efficientnet_lite0")
efficientnet_lite1 = lesson_arch("efficientnet_lite1")
efficientnet_lite2 = lesson_arch("efficientnet_lite2")
mobilenetv3_large = lesson_arch("mobilenetv3_large")
resnet18 = lesson_arch("resnet18")
resnet34 = lesson_arch("resnet34")
resnet50 = lesson_arch("resnet50")
resnet101 = lesson_arch("resnet101")
resnext50 = lesson_arch("resnext50")
