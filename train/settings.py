"""The settings that define a training run, typed, with defaults from `core.recipe`.

Written to RUN_DIR/run_settings.json when a run starts (one flat record);
`--resume` refuses to continue when any entry except `epochs` differs. The
model card's `recipe` entry is the same record without `seed` and `data`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.recipe import AUGMENTATION, INPUT_SIZE, OPTIMISATION, Augmentation, Optimisation, default_trainable_from
from train import dedup

#: Entries that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("epochs",)


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

    def __post_init__(self) -> None:
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
        def pick(kind):
            return kind(**{f.name: getattr(args, f.name) for f in dataclasses.fields(kind)})

        augmentation = pick(Augmentation)
        data = {"train": args.train, "val": args.val, "val_split": args.val_split, "test": args.test,
                "prepared": None if args.prepared is None else str(args.prepared),
                "negative_classes": list(args.negative_classes)}
        return cls(optimisation=pick(Optimisation),
                   augmentation=dataclasses.replace(augmentation, brightness=tuple(augmentation.brightness)),
                   trainable_from=args.trainable_from or "", image_size=args.image_size, seed=args.seed,
                   near_threshold=args.near_threshold, data=data)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready record (brightness as a list)."""
        return {"trainable_from": self.trainable_from, "image_size": self.image_size,
                **dataclasses.asdict(self.optimisation), **dataclasses.asdict(self.augmentation),
                "brightness": list(self.augmentation.brightness), "seed": self.seed,
                "near_threshold": self.near_threshold, "data": self.data}

    def recipe(self) -> dict[str, Any]:
        """The card's `recipe` entry: every setting except the seed and the data."""
        return {key: value for key, value in self.to_dict().items() if key not in ("seed", "data")}

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Names of the entries that differ from a saved record (ignoring RESUMABLE_CHANGES)."""
        current = self.to_dict()
        return [key for key in current if key not in RESUMABLE_CHANGES and saved.get(key) != current[key]]
