"""The operator library: loading kernels/*.wpl, duplicate names and broken files are reported with their file."""

from __future__ import annotations

import pytest

from woodpecker.dsl.library import default_library, load_library
from woodpecker.errors import DSLError


def test_default_library_contents():
    lib = default_library()
    assert {"conv2d", "dense", "softmax", "max_pool2d"} <= set(lib.templates)
    assert {"relu", "gelu", "clip"} <= set(lib.fns)
    assert lib.sources["conv2d"] == "conv2d.wpl" and lib.sources["relu"] == "elementwise.wpl"
    with pytest.raises(DSLError, match="no kernel template named nope"):
        lib.template("nope")


def test_duplicate_kernel_names_the_files(tmp_path):
    k = "kernel k(X: f32[4]) -> Y {\n  Y[i < 4] = X[i]\n}\n"
    (tmp_path / "a.wpl").write_text(k)
    (tmp_path / "b.wpl").write_text("\n" + k)
    with pytest.raises(DSLError) as info:
        load_library(tmp_path)
    assert str(info.value) == "b.wpl:2:8: kernel k is defined twice (also in a.wpl)"


def test_duplicate_fn(tmp_path):
    (tmp_path / "a.wpl").write_text("fn f(x) = x\n")
    (tmp_path / "b.wpl").write_text("fn g(x) = x\nfn f(x) = x\n")
    with pytest.raises(DSLError, match=r"^b.wpl:2:1: fn f is defined twice \(also in a.wpl\)$"):
        load_library(tmp_path)


def test_semantic_error_in_a_library_file(tmp_path):
    (tmp_path / "a.wpl").write_text("fn f(x) = x\n\nkernel k(X: f32[4]) -> Y {\n  Y[i < 4] = g(X[i])\n}\n")
    with pytest.raises(DSLError, match=r"^a.wpl:4:14: unknown function g$"):
        load_library(tmp_path)
    (tmp_path / "a.wpl").write_text("fn f(x) = x + y\n")
    with pytest.raises(DSLError, match=r"^a.wpl:1:15: unknown name y in fn f$"):
        load_library(tmp_path)
    (tmp_path / "a.wpl").write_text("fn f(x) = h(x)\n")
    with pytest.raises(DSLError, match=r"^a.wpl:1:11: unknown function h in fn f$"):
        load_library(tmp_path)


def test_syntax_error_in_a_library_file(tmp_path):
    (tmp_path / "z.wpl").write_text("fn f(x) = x +\n")
    with pytest.raises(DSLError, match=r"^z.wpl:1:13: unexpected end of input"):
        load_library(tmp_path)


def test_fn_calling_a_fn_with_the_wrong_arity(tmp_path):
    (tmp_path / "a.wpl").write_text("fn g(x, y) = x + y\nfn f(x) = g(x)\n")
    with pytest.raises(DSLError, match=r"^a.wpl:2:11: g takes 2 argument\(s\), got 1 \(in fn f\)$"):
        load_library(tmp_path)
