"""Input generation from model metadata: shapes, dtypes, .npy/.npz files, errors that name the input."""

from pathlib import Path

import numpy as np
import pytest

from edgefleet.runtime.loadgen.errors import BenchInputError
from edgefleet.runtime.loadgen.inputs import (
    TensorSpec,
    generate_inputs,
    load_input_file,
    parse_shape_overrides,
    resolve_shape,
    v2_datatype,
)

IMAGE = TensorSpec("x", "FP32", (-1, 3, 224, 224))
DET = TensorSpec("x", "FP32", (-1, 3, -1, -1))
FIXED = TensorSpec("data", "FP32", (1, 3, 224, 224))


@pytest.mark.unit
def test_batch_fills_the_dynamic_first_dimension() -> None:
    """--batch sets a dynamic batch dimension; fixed dimensions stay."""
    assert resolve_shape(IMAGE, 4) == (4, 3, 224, 224)
    assert resolve_shape(FIXED, 1) == (1, 3, 224, 224)


@pytest.mark.unit
def test_override_gives_dynamic_spatial_dims_and_batch_still_applies() -> None:
    """--shape x=1x3x640x640 fills H and W; --batch replaces its leading 1."""
    assert resolve_shape(DET, 2, (1, 3, 640, 640)) == (2, 3, 640, 640)


@pytest.mark.unit
def test_unresolved_dynamic_dim_names_input_and_suggests_shape() -> None:
    """A dynamic H/W without --shape is an error naming the input and an example option."""
    with pytest.raises(BenchInputError, match=r"--shape x=1x3x1x1") as info:
        resolve_shape(DET, 1)
    assert info.value.code == "bench.dynamic_shape"
    assert info.value.fields["input"] == "x"


@pytest.mark.unit
def test_override_cannot_contradict_fixed_dims() -> None:
    """An override that changes a fixed dimension, or the rank, is refused."""
    with pytest.raises(BenchInputError, match="fixes it at 3"):
        resolve_shape(DET, 1, (1, 4, 64, 64))
    with pytest.raises(BenchInputError, match="3 dimensions"):
        resolve_shape(DET, 1, (1, 3, 64))


@pytest.mark.unit
def test_batch_on_a_fixed_batch_model_is_refused() -> None:
    """--batch 8 cannot apply to a model whose batch dimension is fixed at 1."""
    with pytest.raises(BenchInputError) as info:
        resolve_shape(FIXED, 8)
    assert info.value.code == "bench.batch_fixed"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [
        ("FP32", np.float32),
        ("FP16", np.float16),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("BOOL", np.bool_),
    ],
)
def test_generated_data_has_declared_dtype_and_shape(datatype: str, dtype: type) -> None:
    """Random inputs carry the dtype the metadata declares, at the resolved shape."""
    arrays = generate_inputs([TensorSpec("t", datatype, (-1, 5))], batch=3)
    assert arrays["t"].dtype == np.dtype(dtype)
    assert arrays["t"].shape == (3, 5)


@pytest.mark.unit
def test_generation_is_seeded_and_floats_in_unit_interval() -> None:
    """The same seed gives the same bytes; floats are uniform in [0, 1)."""
    a = generate_inputs([IMAGE], seed=7)["x"]
    b = generate_inputs([IMAGE], seed=7)["x"]
    assert np.array_equal(a, b)
    assert float(a.min()) >= 0.0
    assert float(a.max()) < 1.0


@pytest.mark.unit
def test_bytes_inputs_are_object_arrays() -> None:
    """BYTES tensors are object arrays of bytes, as tritonclient expects."""
    arr = generate_inputs([TensorSpec("s", "BYTES", (-1,))], batch=2)["s"]
    assert arr.dtype == np.object_
    assert list(arr) == [b"edgefleet", b"edgefleet"]


@pytest.mark.unit
def test_unknown_override_name_is_refused() -> None:
    """--shape for an input the model lacks names the real inputs."""
    with pytest.raises(BenchInputError, match=r"\['x'\]"):
        generate_inputs([IMAGE], overrides={"y": (1, 3, 224, 224)})


@pytest.mark.unit
def test_parse_shape_overrides() -> None:
    """NAME=AxBxC and NAME=A,B,C both parse; junk is refused with the option named."""
    assert parse_shape_overrides(["x=1x3x640x640", "y=2,4"]) == {"x": (1, 3, 640, 640), "y": (2, 4)}
    for bad in ("x", "x=", "x=1xax2", "=1x2", "x=0x3"):
        with pytest.raises(BenchInputError, match="--shape"):
            parse_shape_overrides([bad])


@pytest.mark.unit
def test_v2_datatype_of_ort_types() -> None:
    """ORT type strings map to KServe v2 datatypes; an unmapped one is a named error."""
    assert v2_datatype("tensor(float)", name="x") == "FP32"
    assert v2_datatype("tensor(float16)", name="x") == "FP16"
    with pytest.raises(BenchInputError, match="'x'"):
        v2_datatype("seq(tensor(float))", name="x")


@pytest.mark.unit
def test_input_files_npy_and_npz(tmp_path: Path) -> None:
    """An .npy feeds a single-input model, an .npz is keyed by input name; both are checked."""
    arr = np.ones((2, 3, 224, 224), np.float32)
    np.save(tmp_path / "one.npy", arr)
    assert load_input_file(tmp_path / "one.npy", [IMAGE])["x"].shape == (2, 3, 224, 224)
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 2), np.int64), b=np.zeros((1,), np.float32))
    specs = [TensorSpec("a", "INT64", (-1, 2)), TensorSpec("b", "FP32", (-1,))]
    assert set(load_input_file(tmp_path / "two.npz", specs)) == {"a", "b"}


@pytest.mark.unit
def test_input_file_mismatches_are_named(tmp_path: Path) -> None:
    """Wrong dtype, wrong shape, missing file and wrong names each get their own code."""
    np.save(tmp_path / "f64.npy", np.ones((1, 3, 224, 224)))
    np.save(tmp_path / "small.npy", np.ones((1, 3, 32, 32), np.float32))
    np.savez(tmp_path / "names.npz", y=np.ones((1, 3, 224, 224), np.float32))
    cases = {
        "f64.npy": "bench.input_dtype",
        "small.npy": "bench.input_shape",
        "names.npz": "bench.input_file",
        "missing.npy": "bench.input_file",
    }
    for name, code in cases.items():
        with pytest.raises(BenchInputError) as info:
            load_input_file(tmp_path / name, [IMAGE])
        assert info.value.code == code, name
