"""Real measurement of a small kernel: timing repeats, reference check, caching, and wrong results rejected."""

from __future__ import annotations

import pytest

from woodpecker.hw.host import target_dict
from woodpecker.measure.measurer import MeasureOptions, Measurer
from woodpecker.space.space import space_for_task


def test_measures_checks_and_caches(conv):
    task, (inputs, expected) = conv
    space = space_for_task(task)
    with Measurer(target_dict(), options=MeasureOptions(repeat=3, min_repeat_ms=5, cold_cache=False)) as m:
        m.set_reference(task, inputs, expected)
        first = m.measure(task, [space.default])[0]
        assert first.ok and len(first.run_secs) == 3 and all(s > 0 for s in first.run_secs)
        again = m.measure(task, [space.default])[0]
        assert again.ok and again.build_secs == 0.0, "the compiled candidate comes from the build cache"
        # a reference that disagrees with the kernel: the candidate is rejected before it is timed
        m.set_reference(task, inputs, expected + 1.0)
        wrong = m.measure(task, [space.default])[0]
        assert not wrong.ok and "wrong result" in wrong.error and wrong.run_secs == ()


def test_cold_cache_timing_runs_single_flushed_runs(conv):
    """With cold caches every figure is one run after a flush (woodpecker.measure.jobs.COLD_RUNS of them); the
    reference check is the same."""
    from woodpecker.measure.jobs import COLD_RUNS

    task, (inputs, expected) = conv
    space = space_for_task(task)
    with Measurer(target_dict(), options=MeasureOptions(repeat=3, min_repeat_ms=5, cold_cache=True)) as m:
        m.set_reference(task, inputs, expected)
        r = m.measure(task, [space.default])[0]
        assert r.ok and len(r.run_secs) == COLD_RUNS and all(s > 0 for s in r.run_secs)
        m.set_reference(task, inputs, expected + 1.0)
        assert "wrong result" in m.measure(task, [space.default])[0].error


def test_illegal_schedule_is_a_failed_build(conv):
    task, (inputs, expected) = conv
    space = space_for_task(task)
    bad = dict(space.default, reduction_order="x,y,z")  # not a permutation of the reduction axes
    with Measurer(target_dict(), options=MeasureOptions(repeat=2, min_repeat_ms=1)) as m:
        m.set_reference(task, inputs, expected)
        res = m.measure(task, [bad])[0]
    assert not res.ok and res.error.startswith("build failed")


def test_cold_cache_records_are_kept_apart_from_hot_ones():
    from woodpecker import config
    from woodpecker.targets import resolve

    host = resolve("host")
    hot = host.toolchain(MeasureOptions(cold_cache=False))
    cold = host.toolchain(MeasureOptions(cold_cache=True))
    assert "timing" not in hot and cold == {**hot, "timing": "cold-cache"}
    with config.override(cold_cache=True):
        assert MeasureOptions().cold_cache and host.toolchain() == cold
        assert host.record_toolchains() == [cold, hot]
    with config.override(cold_cache=False):
        assert not MeasureOptions().cold_cache and host.toolchain() == hot
        assert host.record_toolchains() == [hot, cold]


def test_cold_cache_is_the_default_and_the_environment_turns_it_off(monkeypatch):
    from woodpecker import config

    monkeypatch.delenv("WOODPECKER_COLD_CACHE", raising=False)
    assert config._from_env().cold_cache
    monkeypatch.setenv("WOODPECKER_COLD_CACHE", "0")
    assert not config._from_env().cold_cache


@pytest.mark.parametrize("target", ["p100", "rv64gcv128"])
def test_timing_mode_does_not_split_records_of_simulated_or_gpu_targets(target):
    from woodpecker.targets import resolve

    t = resolve(target)
    assert t.toolchain(MeasureOptions(cold_cache=True)) == t.toolchain(MeasureOptions(cold_cache=False))
    assert "timing" not in t.toolchain(MeasureOptions(cold_cache=True))
    first, older = t.record_toolchains()  # records tagged by older versions are still found, second
    assert "timing" not in first and older == {**first, "timing": "cold-cache"}


def test_one_workload_named_differently_in_two_models_is_built_under_each_name(conv, tmp_path):
    """The same workload is a different symbol in different models (fused_conv2d_..._5 in ResNet-50, ..._1 in
    ResNet-18): a build cached under one name must not be handed to the other."""
    import dataclasses

    from woodpecker import config

    task, (inputs, expected) = conv
    name = task.name + "_in_another_model"
    renamed = dataclasses.replace(task, name=name, kernel=dataclasses.replace(task.kernel, name=name))
    with config.override(cache_dir=tmp_path):  # one shared build cache, empty
        with Measurer(target_dict(), options=MeasureOptions(repeat=1, min_repeat_ms=1, cold_cache=False)) as m:
            for t in (task, renamed):
                m.set_reference(t, inputs, expected)
                r = m.measure(t, [space_for_task(t).default])[0]
                assert r.ok, r.error


def test_a_changed_schedule_template_is_a_new_build(conv, tmp_path, monkeypatch):
    """The build cache is keyed by the code that generates a kernel too (the DSL lowering and the schedule
    templates): a template change that keeps the knobs' meaning must not be timed through an object built by the
    older template."""
    from woodpecker.measure import jobs

    task, _ = conv
    knobs = space_for_task(task).default
    before = jobs.build_path(tmp_path, task, knobs)
    assert jobs.build_path(tmp_path, task, knobs) == before
    assert len(jobs.codegen_digest()) == 16
    monkeypatch.setattr(jobs, "codegen_digest", lambda: "a-later-template")
    assert jobs.build_path(tmp_path, task, knobs) != before


def test_the_host_runner_times_a_batchs_first_candidate_twice_and_keeps_the_second():
    """The first job after the runner sat idle through the builds ran ~4 ms slower per run on these VMs
    (woodpecker.measure.measurer.SETTLING_RUN): it runs once more, first, and those figures are dropped."""
    from woodpecker.measure.base import Built, RunInput
    from woodpecker.measure.measurer import SETTLING_RUN, PoolRunner
    from woodpecker.measure.pool import CallResult

    class Pool:
        def __init__(self):
            self.jobs = []

        def map(self, fn, arg_list, timeout_s):
            self.jobs.extend(a[0] for a in arg_list)
            return [CallResult({"run_secs": [float(i)], "error": None}) for i in range(len(arg_list))]

    inputs = [RunInput(None, {}, Built(name), "") for name in ("a", "b", "c")]
    pool = Pool()
    runner = PoolRunner(lambda: pool, None, lambda x: (x.built.artifact,), lambda: 1.0, settling_run=True)
    ran = runner.run(inputs)
    # the settling run is a call of its own (its figure 0.0); the batch's figures are those of the second call
    assert pool.jobs == ["a", "a", "b", "c"] and [r.run_secs for r in ran] == [(0.0,), (1.0,), (2.0,)]
    assert runner.run([]) == [] and pool.jobs == ["a", "a", "b", "c"]  # an empty batch runs nothing
    with Measurer(target_dict()) as m:
        assert SETTLING_RUN and m.runner_stage.settling_run
    plain = PoolRunner(lambda: pool, None, lambda x: (x.built.artifact,), lambda: 1.0)
    assert [r.run_secs for r in plain.run(inputs[:1])] == [(0.0,)]  # other runners (simulators, GPUs) as before


def test_a_first_candidate_that_hangs_is_not_run_again_to_settle():
    """A crash or a hang of the batch's first candidate in its settling run is its result: a hanging candidate costs
    one run timeout, not two; the others run once each."""
    from woodpecker.measure.base import Built, RunInput
    from woodpecker.measure.measurer import PoolRunner
    from woodpecker.measure.pool import CallResult

    class Pool:
        def __init__(self):
            self.jobs = []

        def map(self, fn, arg_list, timeout_s):
            self.jobs.extend(a[0] for a in arg_list)
            return [CallResult(None, "timed out after 1 s") if a[0] == "hang" else
                    CallResult({"run_secs": [1.0], "error": None}) for a in arg_list]

    pool = Pool()
    runner = PoolRunner(lambda: pool, None, lambda x: (x.built.artifact,), lambda: 1.0, settling_run=True)
    ran = runner.run([RunInput(None, {}, Built(name), "") for name in ("hang", "b")])
    assert pool.jobs == ["hang", "b"]
    assert ran[0].error == "run failed: timed out after 1 s" and ran[1].run_secs == (1.0,)
    assert runner.run([RunInput(None, {}, Built("hang"), "")])[0].error and pool.jobs == ["hang", "b", "hang"]
