"""padding strings are case-insensitive, as Keras's standardize_padding lowercases them:
Conv2D / MaxPooling2D / AveragePooling2D accept "SAME", "Valid", ... and store the lowercase
form (get_config, save/load, the native Net)."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import executor, layers


def test_padding_strings_are_case_insensitive(tmp_path):
    m = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(2, 3, padding="SAME"),
                       layers.MaxPooling2D(2, padding="Same"),
                       layers.AveragePooling2D(2, padding="VALID"), layers.Flatten(),
                       layers.Dense(3, activation="softmax")])
    assert [lay.get_config()["padding"] for lay in m.layers[:3]] == ["same", "same", "valid"]
    assert m.layers[0].compute_output_shape((None, 8, 8, 1)) == (None, 8, 8, 2)
    m.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(m, 4, "train"), executor.NativeEngine)
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    m.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    m.save(str(tmp_path / "p.cnnfast"))
    m2 = cf.models.load_model(str(tmp_path / "p.cnnfast"))
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.parametrize("cls", [layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D])
def test_unknown_padding_still_rejected(cls):
    args = (2, 3) if cls is layers.Conv2D else (2,)
    with pytest.raises(ValueError, match="padding"):
        cls(*args, padding="full")
    with pytest.raises(NotImplementedError, match="causal"):
        cls(*args, padding="CAUSAL")
