"""What the console and the report call the recipe's steps, phases and laps (the files keep the keys).

>>> in_words("head_aug"), in_words("startup"), in_words("other")
('head, augmented views', 'start-up (Python, imports)', 'other')
"""
from __future__ import annotations

# what the console and the report call each step, phase and lap (internal keys stay in the files)
STEP_WORDS = {
    "precompute": "precompute activations",
    "lr_find_head": "lr_find on the head",
    "head_precompute": "head on precomputed activations",
    "head_aug": "head, augmented views",
    "unfreeze": "unfreeze",
    "differential_lrs": "differential learning rates",
    "lr_find_unfrozen": "lr_find, unfrozen",
    "sgdr_unfrozen": "SGDR, fine-tuning",
}
PHASE_WORDS = {
    "head_precompute": "head, precomputed activations",
    "head_aug": "head, augmented views",
    "unfrozen": "fine-tuned (steps 5-8: whole network, or late group and head)",
}
LAP_WORDS = {
    "startup": "start-up (Python, imports)",
    "setup": "data and model",
    **STEP_WORDS,
    "evaluate_tta": "evaluation and TTA",
    "export": "export",
    "report": "previews and report",
}


def in_words(key) -> str:
    """A step, phase or lap key as the console and the report say it (unknown keys as they are)."""
    key = str(key)
    return PHASE_WORDS.get(key) or LAP_WORDS.get(key) or key
