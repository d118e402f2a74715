"""Any digit image (photo, scan, tight crop, array; any size, either polarity) -> an MNIST-like 28×28.

One pipeline for every input: ``to_mnist`` is what ``predict.py``, the demo and every
evaluation set (photos, scans, arrays) go through, so the tables report what users get.
The steps: ``load`` -> ``formbox`` -> ``paper`` -> ``ink`` -> ``normalize``, assembled in ``pipeline``.
"""

from mnist_gen.preprocess.config import MNIST_BOX, MNIST_SIZE, PreprocessConfig, PreprocessResult, as_config
from mnist_gen.preprocess.load import load_image
from mnist_gen.preprocess.normalize import normalize_digit
from mnist_gen.preprocess.pipeline import PIPELINE_VERSION, naive, to_mnist

__all__ = ["MNIST_BOX", "MNIST_SIZE", "PIPELINE_VERSION", "PreprocessConfig", "PreprocessResult", "as_config",
           "load_image", "naive", "normalize_digit", "to_mnist"]
