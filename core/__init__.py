"""Brain-tumour detection on MRI slices: the library shared by the app and the trainer.

Public API:
    read_scan(source, *, name=None) -> Scan          (core.io)
    crop_brain(pixels) -> Crop                       (core.crop)
    to_model_input(image, size=224) -> np.ndarray    (core.preprocess)
    build_model(weights, trainable_from, input_size) (core.model)
    load_classifier(path=None) -> Classifier         (core.model)
    explain(classifier, pixels, method, target)      (core.explain)
"""

from core.crop import Crop, crop_brain, find_brain_box
from core.explain import Explanation, explain
from core.io import Scan, ScanError, read_scan
from core.model import Classifier, build_model, load_classifier
from core.preprocess import INPUT_SIZE, prepare_crop, to_model_input

__all__ = [
    "INPUT_SIZE",
    "Classifier",
    "Crop",
    "Explanation",
    "Scan",
    "ScanError",
    "build_model",
    "crop_brain",
    "explain",
    "find_brain_box",
    "load_classifier",
    "prepare_crop",
    "read_scan",
    "to_model_input",
]
