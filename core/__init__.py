"""Brain-tumour detection on MRI slices: the library shared by the app and the trainer.

Public API:
    read_scan(source, *, name=None) -> Scan                 (core.scanio)
    prepare_scan(source, size=224) -> PreparedScan          (core.pipeline: read + crop + model input)
    crop_brain(pixels) -> Crop                              (core.crop)
    to_model_input(image, size=224) -> np.ndarray           (core.preprocess)
    build_model(weights, trainable_from, input_size)        (core.model)
    load_classifier(path=None) -> Classifier                (core.model; card: core.card.ModelCard)
    explain(classifier, scan, method, target) -> Explanation (core.explain)
"""

from core.card import ModelCard
from core.crop import Crop, crop_brain, find_brain_box
from core.explain import Explanation, explain
from core.labels import NO_TUMOUR, TUMOUR, label_for
from core.model import Classifier, build_model, load_classifier
from core.pipeline import PreparedScan, prepare_pixels, prepare_scan
from core.preprocess import prepare_crop, to_model_input
from core.recipe import INPUT_SIZE
from core.scanio import Scan, ScanError, read_scan

__all__ = [
    "INPUT_SIZE",
    "NO_TUMOUR",
    "TUMOUR",
    "Classifier",
    "Crop",
    "Explanation",
    "ModelCard",
    "PreparedScan",
    "Scan",
    "ScanError",
    "build_model",
    "crop_brain",
    "explain",
    "find_brain_box",
    "label_for",
    "load_classifier",
    "prepare_crop",
    "prepare_pixels",
    "prepare_scan",
    "read_scan",
    "to_model_input",
]
