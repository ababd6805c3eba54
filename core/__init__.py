"""Brain-tumour detection on MRI slices: the library shared by the app and the trainer.

Public API:
    read_scan(source, *, name=None) -> Scan                 (core.io)
    prepare_scan(source, size=224) -> PreparedScan          (core.imaging.pipeline: read + crop + model input)
    crop_brain(pixels) -> Crop                              (core.imaging.crop)
    to_model_input(image, size=224) -> np.ndarray           (core.imaging.preprocess)
    build_model(weights, trainable_from, input_size)        (core.model.classifier)
    load_classifier(path=None) -> Classifier                (core.model.classifier; card: core.model.card.ModelCard)
    explain(classifier, scan, method, target) -> Explanation (core.explain)
"""

from core.explain import Explanation, explain
from core.imaging.crop import Crop, crop_brain, find_brain_box
from core.imaging.pipeline import PreparedScan, prepare_pixels, prepare_scan
from core.imaging.preprocess import prepare_crop, to_model_input
from core.io import Scan, ScanError, read_scan
from core.model.card import ModelCard
from core.model.classifier import Classifier, build_model, load_classifier
from core.model.labels import NO_TUMOUR, TUMOUR, label_for
from core.recipe import INPUT_SIZE

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
