"""Search space files: they parse, resolve against real tasks, keep the default, and reject invalid points."""

from __future__ import annotations

import random

import pytest

from woodpecker.data import data_dir
from woodpecker.space.space import SpaceError, parse_space_file, space_for_task


def test_every_space_file_parses():
    files = sorted((data_dir("search_spaces") / "cpu").glob("*.toml"))
    assert len(files) >= 10
    for f in files:
        spec = parse_space_file(f)
        assert spec.family == f.stem and spec.target_class == "cpu"
        assert spec.knobs and all(k.get("doc") for k in spec.knobs), f"{f.name}: every knob says what it does"
        assert all(c.why for c in spec.constraints), f"{f.name}: every constraint says why"


def test_malformed_space_file_is_reported(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text('family = "x"\ntarget_class = "cpu"\ntemplate = "t"\n[knobs.a]\nkind = "dial"\nvalues = [1]\n')
    with pytest.raises(SpaceError, match="x.toml: knob a has kind 'dial'"):
        parse_space_file(bad)


def test_tasks_of_the_zoo_get_spaces_with_valid_defaults(lowered_zoo):
    families = set()
    for task in lowered_zoo:
        space = space_for_task(task)
        families.add(task.family)
        assert space.is_valid(space.default), (task.name, space.violations(space.default))
        for knob in space.knobs:
            assert space.default[knob.name] in knob.values
    assert {"conv2d_nchwc", "depthwise_nchwc", "dense_packed", "pool2d", "row_reduce", "injective"} <= families


def test_constraints_reject_register_spills(lowered_zoo):
    task = next(t for t in lowered_zoo if t.family == "conv2d_nchwc" and t.param_shapes[-1][3] >= 8)
    space = space_for_task(task)
    spill = space.point({"tile_x": 8, "tile_y": 4, "tile_ko": space.default["tile_ko"]})
    assert any("register" in v for v in space.violations(spill))
    rng = random.Random(0)
    for _ in range(20):
        assert space.is_valid(space.random_point(rng))


def test_register_tile_constraint_follows_the_vector_register_file():
    """16 accumulators (8 channels x 2 rows x one 16-lane vector) fit AVX-512's 32 registers, not AVX2's 16."""
    from woodpecker.testing.kernels import conv2d_task

    task = conv2d_task(1, 64, 28, 64, 3, 1, 1)
    wide = space_for_task(task, lanes=16, vector_registers=32)
    narrow = space_for_task(task, lanes=16, vector_registers=16)
    point = dict(wide.default, tile_k=8, tile_y=2, tile_x=16)
    assert wide.is_valid(point), wide.violations(point)
    assert not narrow.is_valid(point)
    assert any("vector register file" in v for v in narrow.violations(point))


def test_a_knob_decided_by_the_kernel_before_keeps_the_default_value(lowered_zoo, tmp_path):
    """`from_context` knobs (the outer order of convolutions, depthwise and pooling: which rows each core computes,
    whose best depends on which rows the kernel before wrote) have the default's value only; the file's other
    values stay for knobs without it."""
    from woodpecker.space import space as space_module

    pinned = 0
    for task in lowered_zoo:
        spec = space_module.load_space_file(task.family, "cpu")
        if spec is None:
            continue
        from_context = {k["name"] for k in spec.knobs if k.get("from_context")}
        space = space_for_task(task)
        for knob in space.knobs:
            if knob.name in from_context:
                assert knob.values == (space.default[knob.name],), (task.name, knob)
                pinned += 1
    assert pinned
    assert {k["name"] for k in space_module.load_space_file("depthwise_nchwc", "cpu").knobs
            if k.get("from_context")} == {"outer_order"}
