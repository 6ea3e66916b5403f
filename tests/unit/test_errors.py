"""The error root: stable codes, exit codes, HTTP statuses and the API body."""

from pathlib import Path

import pytest

from edgefleet import errors


@pytest.mark.unit
def test_subclasses_keep_their_branch_exit_code_and_status() -> None:
    """A subsystem error inherits how the edges map it."""

    class BundleHashError(errors.VerificationError):
        default_code = "bundle.hash_mismatch"

    exc = BundleHashError("file model.onnx: sha256 differs", path="model.onnx")
    assert exc.code == "bundle.hash_mismatch"
    assert exc.exit_code == 7
    assert exc.http_status == 422
    assert isinstance(exc, errors.EdgefleetError)


@pytest.mark.unit
def test_to_dict_is_json_ready() -> None:
    """Fields become JSON values: paths and sets are converted, the code and message stay as given."""
    exc = errors.InvalidInputError(
        "tensor 'x': expected FP32", code="serve.bad_dtype", tensor="x", allowed={"FP32"}, path=Path("/m")
    )
    assert exc.to_dict() == {
        "code": "serve.bad_dtype",
        "message": "tensor 'x': expected FP32",
        "fields": {"tensor": "x", "allowed": ["FP32"], "path": "/m"},
    }
    assert str(exc) == "tensor 'x': expected FP32 [serve.bad_dtype]"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("cls", "exit_code", "status"),
    [
        (errors.InvalidInputError, 2, 400),
        (errors.PayloadTooLargeError, 2, 413),
        (errors.NotFoundError, 3, 404),
        (errors.ConflictError, 4, 409),
        (errors.UnavailableError, 6, 503),
        (errors.UnsupportedError, 6, 501),
        (errors.VerificationError, 7, 422),
    ],
)
def test_each_branch_maps_to_one_exit_code_and_status(
    cls: type[errors.EdgefleetError], exit_code: int, status: int
) -> None:
    """The table in the module docstring is what the classes say."""
    assert (cls.exit_code, cls.http_status) == (exit_code, status)
