"""keras.preprocessing.image: the legacy ImageDataGenerator and the image file helpers."""
from ..._missing import missing_names as _missing_names
from ...images import array_to_img, img_to_array, load_img, save_img, smart_resize  # noqa: F401
from ...utils.image_data_generator import (  # noqa: F401
    DirectoryIterator,
    ImageDataGenerator,
    Iterator,
    NumpyArrayIterator,
    apply_affine_transform,
)

__getattr__ = _missing_names("tensorflow.keras.preprocessing.image")
