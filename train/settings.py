"""The settings that define a training run, typed, with defaults from `core.recipe`.

Written to RUN_DIR/run_settings.json when a run starts (one flat record);
`--resume` refuses to continue when any entry except `epochs` differs. The
model card's `recipe` entry is the same record without `seed` and `data`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.imaging.normalise import NORMALISATIONS
from core.recipe import (
    AUGMENTATION,
    BACKBONES,
    INPUT_SIZE,
    OPTIMISATION,
    Augmentation,
    Optimisation,
    default_trainable_from,
)
from train.data import dedup
from train.transforms.appearance import OFF, PRESETS, Appearance

#: Entries that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("epochs",)
#: --balance choices: none (the recipe: every scan once per epoch) or source-class (equal (source, class) cells).
BALANCES = ("none", "source-class")


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides what a run trains (not where its files go or how many workers it uses).

    trainable_from: first trainable stage; empty means the recipe's rule (conv4 with
    pretrained weights, conv1 from random initialisation).
    """

    optimisation: Optimisation = OPTIMISATION
    augmentation: Augmentation = AUGMENTATION
    trainable_from: str = ""
    image_size: int = INPUT_SIZE
    seed: int = 0
    near_threshold: int = dedup.NEAR_THRESHOLD
    data: dict[str, Any] = field(default_factory=dict)
    balance: str = "none"
    appearance: Appearance = OFF
    normalise: str = "none"
    bn_momentum: float | None = None
    backbone: str = "resnet50"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}. Received: {self.backbone!r}")
        if self.backbone == "small" and self.pretrained:
            raise ValueError("the small backbone has no pretrained weights: add --weights none. "
                             f"Received: --weights {self.optimisation.weights}")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}. Received: {self.balance!r}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}. Received: {self.normalise!r}")
        if self.bn_momentum is not None and not 0 < self.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be between 0 and 1. Received: {self.bn_momentum!r}")
        if not self.trainable_from:
            object.__setattr__(self, "trainable_from", default_trainable_from(self.pretrained))

    @property
    def pretrained(self) -> bool:
        return self.optimisation.weights not in (None, "none")

    @property
    def weights_for_build(self) -> str | None:
        """What `core.build_model(weights=...)` takes: None for random initialisation."""
        return self.optimisation.weights if self.pretrained else None

    @classmethod
    def from_args(cls, args) -> "RunSettings":
        """From parsed `python -m train` arguments (option names are the field names)."""
        data = {"train": args.train, "val": args.val, "val_split": args.val_split, "test": args.test,
                "prepared": None if args.prepared is None else str(args.prepared),
                "negative_classes": list(args.negative_classes)}
        return cls(optimisation=picked(Optimisation, args), augmentation=augmentation_of(args),
                   trainable_from=args.trainable_from or "", image_size=args.image_size, seed=args.seed,
                   near_threshold=args.near_threshold, data=data, **generalisation_of(args))

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready record (brightness as a list)."""
        return {"trainable_from": self.trainable_from, "image_size": self.image_size,
                **dataclasses.asdict(self.optimisation), **dataclasses.asdict(self.augmentation),
                "brightness": list(self.augmentation.brightness), "seed": self.seed,
                "near_threshold": self.near_threshold, "data": self.data, "balance": self.balance,
                **{f"appearance_{k}": v for k, v in self.appearance.to_dict().items()}, "normalise": self.normalise,
                "bn_momentum": self.bn_momentum, "backbone": self.backbone}

    def recipe(self) -> dict[str, Any]:
        """The card's `recipe` entry: every setting except the seed and the data."""
        return {key: value for key, value in self.to_dict().items() if key not in ("seed", "data")}

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Names of the entries that differ from a saved record (ignoring RESUMABLE_CHANGES)."""
        current, default = self.to_dict(), RunSettings().to_dict()
        # A record written before an entry existed holds that entry's default (the recipe's).
        return [key for key in current
                if key not in RESUMABLE_CHANGES and saved.get(key, default.get(key)) != current[key]]


def picked(kind, args, base=None):
    """A settings dataclass (Optimisation, Augmentation) from the arguments named like its fields.

    With `base`, arguments that are None keep base's value (options whose default is "the profile's").
    """
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(kind)}
    if base is None:
        return kind(**values)
    return dataclasses.replace(base, **{k: v for k, v in values.items() if v is not None})


def augmentation_of(args) -> Augmentation:
    """The recipe augmentation from parsed train.options.add_augmentation_arguments (brightness as a tuple)."""
    augmentation = picked(Augmentation, args)
    return dataclasses.replace(augmentation, brightness=tuple(augmentation.brightness))


def generalisation_of(args) -> dict[str, Any]:
    """balance, appearance, normalise, bn_momentum and backbone from parsed arguments (add_generalisation_arguments).

    --appearance names a preset (train.transforms.appearance.PRESETS); each --appearance-* option that is given
    overrides one of its entries. Parsers without these options give the recipe's defaults.
    """
    preset = PRESETS[getattr(args, "appearance", None) or "off"]
    overrides = {f.name: getattr(args, f"appearance_{f.name}") for f in dataclasses.fields(Appearance)
                 if getattr(args, f"appearance_{f.name}", None) is not None}
    return {"balance": getattr(args, "balance", None) or "none",
            "appearance": dataclasses.replace(preset, **{k: tuple(v) if isinstance(v, list) else v
                                                         for k, v in overrides.items()}),
            "normalise": getattr(args, "normalise", None) or "none",
            "bn_momentum": getattr(args, "bn_momentum", None),
            "backbone": getattr(args, "backbone", None) or "resnet50"}
