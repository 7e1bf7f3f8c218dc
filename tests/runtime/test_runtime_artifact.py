"""The .wpk artifact: save/load round trip, and every kind of damage reported as an ArtifactError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import woodpecker
from woodpecker.errors import ArtifactError
from woodpecker.runtime import artifact


def _model(const_names=("k1", "k2")):
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(0, 0.3, (8, 4, 3, 3)), const_names[0]: rng.normal(0, 1, (1, 8, 1, 1)),
             const_names[1]: rng.uniform(1, 2, (1, 8, 4, 4)), "s": np.array([1, 128])}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 0, 0, 0]),
        helper.make_node("Sub", ["c", const_names[0]], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Div", ["r", const_names[1]], ["d"]),
        helper.make_node("Reshape", ["d", "s"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, "art", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128])],
        [numpy_helper.from_array(v.astype(np.int64 if k == "s" else np.float32), k) for k, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cm = woodpecker.compile(_model())
    path = tmp_path_factory.mktemp("art") / "model.wpk"
    cm.save(path)
    return cm, path


X = np.random.default_rng(1).standard_normal((1, 4, 6, 6)).astype(np.float32)


def test_round_trip(saved):
    cm, path = saved
    loaded = woodpecker.load(path)
    np.testing.assert_array_equal(loaded.run({"x": X})["y"], cm.run({"x": X})["y"])
    assert [k.name for k in loaded.kernels] == [k.name for k in cm.kernels]
    assert [k.source for k in loaded.kernels] == [k.source for k in cm.kernels]
    assert loaded.program == cm.program
    assert loaded.metadata["target"] == cm.metadata["target"] and loaded.metadata["model"] == "art"
    assert set(loaded.constants) == set(cm.constants)
    for k, v in cm.constants.items():
        np.testing.assert_array_equal(loaded.constants[k], v)
    # a loaded model saves again, and that artifact loads and runs too
    again = path.with_name("again.wpk")
    loaded.save(again)
    np.testing.assert_array_equal(woodpecker.load(again).run({"x": X})["y"], cm.run({"x": X})["y"])


def test_contents(saved):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        weights = zf.read("weights.npz")
    assert {"manifest.json", "kernels.so", "weights.npz"} <= names
    assert all(f"dsl/{k['name']}.wpl" in names for k in manifest["kernels"])
    assert manifest["format"] == artifact.FORMAT and manifest["version"] == artifact.VERSION
    assert set(manifest["files"]) == names - {"manifest.json"}
    # the weights are plain arrays: they load without pickle
    with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
        assert npz.files and all(npz[k].dtype != object for k in npz.files)


def test_constants_named_like_savez_parameters(tmp_path):
    # constant names come from the ONNX model; np.savez(file, allow_pickle=..., **arrays) would lose or reject these
    cm = woodpecker.compile(_model(const_names=("allow_pickle", "file")), blocked_layout=False)
    assert {"allow_pickle", "file"} & set(cm.constants)
    cm.save(tmp_path / "m.wpk")
    np.testing.assert_array_equal(woodpecker.load(tmp_path / "m.wpk").run({"x": X})["y"], cm.run({"x": X})["y"])


# ----------------------------------------------------------------------------------------------------------------
# damage


def _rewrite(src, dst, replace=None, drop=(), manifest_edit=None):
    """Copy a zip, replacing or dropping members (replacements get a valid CRC)."""
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zin.read(info.filename))
            if info.filename == "manifest.json" and manifest_edit is not None:
                m = json.loads(data)
                manifest_edit(m)
                data = json.dumps(m).encode()
            zout.writestr(info.filename, data)
    return dst


def _load_error(path) -> str:
    with pytest.raises(ArtifactError) as info:
        woodpecker.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _load_error(tmp_path / "nope.wpk")


def test_not_a_zip(tmp_path):
    p = tmp_path / "m.wpk"
    p.write_bytes(b"this is not a zip archive at all" * 10)
    assert "not a woodpecker artifact" in _load_error(p)
    p.write_bytes(b"")
    assert "not a woodpecker artifact" in _load_error(p)
    assert "not a woodpecker artifact" in _load_error(tmp_path)  # a directory


def test_truncated(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        p = tmp_path / f"t{cut}.wpk"
        p.write_bytes(data[:cut])
        _load_error(p)


def test_zip_without_manifest(saved, tmp_path):
    p = _rewrite(saved[1], tmp_path / "m.wpk", drop=("manifest.json",))
    assert "no manifest.json" in _load_error(p)


def test_corrupt_manifest(saved, tmp_path):
    p = _rewrite(saved[1], tmp_path / "m.wpk", replace={"manifest.json": b"{not json"})
    assert "corrupt manifest" in _load_error(p)
    p = _rewrite(saved[1], tmp_path / "m2.wpk", replace={"manifest.json": b"[1, 2]"})
    assert "corrupt manifest" in _load_error(p)


def test_wrong_format_name(saved, tmp_path):
    p = _rewrite(saved[1], tmp_path / "m.wpk", manifest_edit=lambda m: m.update(format="something-else"))
    assert "'something-else'" in _load_error(p)


@pytest.mark.parametrize("version", [3, 0, "1", None])
def test_unknown_version(saved, tmp_path, version):
    p = _rewrite(saved[1], tmp_path / "m.wpk", manifest_edit=lambda m: m.update(version=version))
    msg = _load_error(p)
    assert "version" in msg and "recompile" in msg


def test_version_one_artifacts_still_load(saved, tmp_path):
    # version 2 only added Program.slices (in-place concats); a version-1 artifact is one without them
    p = _rewrite(saved[1], tmp_path / "m.wpk", manifest_edit=lambda m: m.update(version=1))
    assert woodpecker.load(p).program == saved[0].program


@pytest.mark.parametrize("member", ["kernels.so", "weights.npz"])
def test_modified_member_fails_its_hash(saved, tmp_path, member):
    with zipfile.ZipFile(saved[1]) as zf:
        data = bytearray(zf.read(member))
    data[len(data) // 2] ^= 0xFF
    p = _rewrite(saved[1], tmp_path / "m.wpk", replace={member: bytes(data)})
    msg = _load_error(p)
    assert member in msg and "hash" in msg


def test_modified_bytes_in_place(saved, tmp_path):
    # flipping a byte of the stored library inside the archive (no rewrite): the zip's own CRC catches it
    data = bytearray(saved[1].read_bytes())
    with zipfile.ZipFile(saved[1]) as zf:
        info = zf.getinfo("kernels.so")
    data[info.header_offset + 200] ^= 0xFF
    p = tmp_path / "m.wpk"
    p.write_bytes(bytes(data))
    assert "kernels.so" in _load_error(p)


def test_member_listed_but_missing(saved, tmp_path):
    p = _rewrite(saved[1], tmp_path / "m.wpk", drop=("weights.npz",))
    assert "weights.npz" in _load_error(p)


def test_library_not_listed(saved, tmp_path):
    def edit(m):
        del m["files"]["kernels.so"]

    p = _rewrite(saved[1], tmp_path / "m.wpk", manifest_edit=edit)
    assert "kernels.so is missing" in _load_error(p)


def test_pickled_weights_are_refused(saved, tmp_path):
    # a consistent artifact (hashes updated) whose weights hold an object array: never unpickled
    buf = io.BytesIO()
    np.savez(buf, evil=np.array([{"a": 1}], dtype=object))
    data = buf.getvalue()
    p = _rewrite(saved[1], tmp_path / "m.wpk", replace={"weights.npz": data},
                 manifest_edit=lambda m: m["files"].update({"weights.npz": artifact._sha(data)}))
    msg = _load_error(p)
    assert "corrupt" in msg


def test_corrupt_program(saved, tmp_path):
    p = _rewrite(saved[1], tmp_path / "m.wpk", manifest_edit=lambda m: m.update(program={"inputs": 3}))
    assert "corrupt" in _load_error(p)
    p = _rewrite(saved[1], tmp_path / "m2.wpk", manifest_edit=lambda m: m.update(files=[1, 2]))
    assert "corrupt manifest" in _load_error(p)


def test_a_mixed_program_sets_the_passive_wait_policy_when_loaded():
    """A planned model with vendor calls was timed with PyTorch's OpenMP workers passive; loading it sets the same
    policy (before TVM or torch load), and a damaged program is left for the corrupt-artifact check."""
    import subprocess
    import sys

    from woodpecker.runtime.load import _mixes_runtimes

    assert _mixes_runtimes({"program": {"calls": [{"func": "k0"}, {"func": "v1", "vendor": "torch"}]}})
    assert not _mixes_runtimes({"program": {"calls": [{"func": "k0"}]}})
    assert not _mixes_runtimes({"program": {"inputs": 3}})
    code = ("import os; os.environ.pop('OMP_WAIT_POLICY', None); from woodpecker import config; "
            "config.use_passive_waits(); print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PASSIVE"
