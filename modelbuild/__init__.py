"""Build-time conversion of the PyPI EfficientNet-Lite0 ``.pth`` into Keras, SavedModel and TFLite."""

from modelbuild.photos import SamplePhoto, sample_photos, write_jpegs

__all__ = ["SamplePhoto", "sample_photos", "write_jpegs"]
