"""KernelFeatures + GPU hardware profile -> GpuEstimate: an occupancy-aware roofline (no GPU involved).

For one kernel of B blocks of T threads on a GPU with `SMs` multiprocessors at clock f (symbols are profile
and KernelFeatures fields; eff_* are the fitted efficiency factors, 1.0 when uncalibrated):

    W          = ceil(T / 32)                                   warps per block
    R          = ptxas registers per thread, else 24 + 2 * local elements; at most min(255, 65536 / (32 W))
                 because TVM emits __launch_bounds__(T)
    Rw         = ceil(32 R / 256) * 256                         registers allocated per warp
    spilled    = registers the kernel needs beyond R: without ptxas, the estimate minus the cap; with ptxas,
                 its spill bytes / 8 (each spilled register is stored and loaded at least once, 4 B each)
    s          = spilled / (R + spilled)                          share of the hot values that live in local memory
    spill_ops  = 2 * s * fp_instr                                 a local load and store around each FMA on a
                                                                  spilled accumulator (per thread)
    blocks/SM  = min(max_blocks_per_sm, floor(max_warps_per_sm / W), floor(65536 / (Rw W)),
                     floor(shared_memory_per_sm / (smem_per_block + reserved_per_block)))
    occupancy  = blocks/SM * W / max_warps_per_sm               (theoretical)
    active     = min(blocks/SM, ceil(B / SMs)) * W              warps resident per busy SM
    imb        = ceil(B / SMs) * SMs / B                        the busiest SM's share of the grid
    e_alu      = min(1, active * ILP / (schedulers * alu_latency * lanes_per_scheduler / 32))
                 (each scheduler needs latency x issue rate independent warp instructions in flight)

    T_flop  = (fp_instr * 32 / lanes + sfu_instr * 32 / 16) * W * B / (SMs * f) * imb / (e_alu * eff_flop)
    T_issue = (warp_instructions + spill_ops) * W * B / (SMs * schedulers * f) * imb / (e_alu * eff_issue)
    T_lsu   = (shared + global L1 wavefronts + spill_ops * W) * B / (SMs * f * lsu_bytes_per_cycle / 128) * imb
              / eff_lsu                                           (local memory is interleaved by thread: one
                                                                  128 B wavefront per warp-wide spill access)
    T_L2    = 32 * L2 sectors * B / (BW_L2 * m_L2 * eff_l2)
              (L2 sectors after L1 reuse across consecutive iterations when the resident blocks' working set
              of one iteration fits L1, the no-reuse count when it does not, interpolated in between; plus the
              spill traffic that misses L1: spill_ops * 4 B * T * B times the share of the resident threads'
              spilled bytes that does not fit the L1 left beside shared memory)
    DRAM    = footprint                                                   if footprint <= L2 size
            = max(footprint, min(L2 bytes, waves * unique bytes per wave))   otherwise
    T_DRAM  = DRAM / (BW_DRAM * m_DRAM * eff_dram)
    m_X     = min(1, bytes in flight / (BW_X * latency_X / f))
              Little's law: the bytes the busy SMs keep in flight (active warps x independent loads per
              thread (at most 8) x bytes per request) must cover bandwidth x latency
    T       = max(T_flop, T_issue, T_lsu, T_L2, T_DRAM) + launch_overhead * eff_launch

A module of several kernels takes the sum. The model is uncalibrated until `Efficiency` is fitted on measured
kernels (benchmarks/gpu_calibrate.py); its known biases are listed in shared/notes/simulation.md section 3
(no L1-hit or shared-memory latency stalls, no LDS.128 merging by nvcc, coalesced-naive and smem-tiled GEMMs
nearly tied).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from woodpecker.sim.gpu.features import SECTOR_BYTES, WARP, KernelFeatures

MAX_LOADS_IN_FLIGHT = 8  # independent loads per thread the model credits (registers and scoreboard limit it)
SFU_LANES_PER_SM = 16  # special-function units per SM on every supported architecture


class GpuLaunchError(ValueError):
    """The kernel cannot launch on this GPU (too many threads, too much shared memory)."""


@dataclasses.dataclass(frozen=True)
class GpuDevice:
    """The profile numbers the model uses (hw_profiles/<gpu>.toml), in base units."""

    name: str
    arch: str
    sm_count: int
    fp32_lanes_per_sm: int
    clock_hz: float
    dram_bytes_per_s: float
    l2_bytes_per_s: float
    l2_bytes: int
    shared_memory_per_sm_bytes: int
    max_shared_memory_per_block: int  # static shared memory a block may declare
    reserved_shared_memory_per_block_bytes: int
    l1_bytes_per_sm: int
    unified_l1_shared_bytes_per_sm: int
    registers_per_sm: int
    max_registers_per_thread: int
    register_allocation_unit: int
    max_threads_per_block: int
    max_warps_per_sm: int
    max_blocks_per_sm: int
    schedulers_per_sm: int
    alu_latency_cycles: float
    l2_latency_cycles: float
    dram_latency_cycles: float
    lsu_bytes_per_cycle_per_sm: float
    launch_overhead_s: float

    @classmethod
    def from_profile(cls, profile) -> GpuDevice:
        p: Mapping[str, Any] = profile.params
        t: Mapping[str, Any] = profile.target
        try:
            return cls(
                name=profile.id,
                arch=str(t.get("arch", "sm_80")),
                sm_count=int(p["sm_count"]),
                fp32_lanes_per_sm=int(p["fp32_lanes_per_sm"]),
                clock_hz=float(p["clock_mhz"]) * 1e6,
                dram_bytes_per_s=float(p["dram_bandwidth_bytes_per_s"]),
                l2_bytes_per_s=float(p["l2_bandwidth_bytes_per_s"]),
                l2_bytes=int(p["l2_cache_size_bytes"]),
                shared_memory_per_sm_bytes=int(p["shared_memory_per_sm_bytes"]),
                max_shared_memory_per_block=int(t.get("max_shared_memory_per_block", 49152)),
                reserved_shared_memory_per_block_bytes=int(
                    p.get("reserved_shared_memory_per_block_bytes", 0)
                ),
                l1_bytes_per_sm=int(p["l1_cache_bytes_per_sm"]),
                unified_l1_shared_bytes_per_sm=int(p.get("unified_l1_shared_bytes_per_sm", 0)),
                registers_per_sm=int(p["registers_per_sm"]),
                max_registers_per_thread=int(p["max_registers_per_thread"]),
                register_allocation_unit=int(p.get("register_allocation_unit", 256)),
                max_threads_per_block=int(t.get("max_threads_per_block", 1024)),
                max_warps_per_sm=int(p["max_warps_per_sm"]),
                max_blocks_per_sm=int(p["max_blocks_per_sm"]),
                schedulers_per_sm=int(p["warp_schedulers_per_sm"]),
                alu_latency_cycles=float(p["alu_latency_cycles"]),
                l2_latency_cycles=float(p["l2_latency_cycles"]),
                dram_latency_cycles=float(p["dram_latency_cycles"]),
                lsu_bytes_per_cycle_per_sm=float(p.get("lsu_bytes_per_cycle_per_sm", 128)),
                launch_overhead_s=float(p.get("launch_overhead_us", 3.0)) * 1e-6,
            )
        except KeyError as err:
            raise ValueError(
                f"hardware profile {profile.source}: field {err.args[0]!r} is missing for the GPU model"
            ) from None

    @property
    def peak_flops(self) -> float:
        return self.sm_count * self.fp32_lanes_per_sm * 2 * self.clock_hz


@dataclasses.dataclass(frozen=True)
class Efficiency:
    """Per-term efficiency factors: the fraction of each modelled peak a kernel reaches (fitted on
    measurements)."""

    flop: float = 1.0
    issue: float = 1.0
    lsu: float = 1.0
    l2: float = 1.0
    dram: float = 1.0
    launch: float = 1.0  # multiplies the launch overhead

    NAMES = ("flop", "issue", "lsu", "l2", "dram", "launch")

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, float]) -> Efficiency:
        return cls(**{k: float(v) for k, v in data.items() if k in cls.NAMES})


@dataclasses.dataclass(frozen=True)
class GpuEstimate:
    seconds: float  # estimated kernel time (all kernels of the module)
    terms: Mapping[
        str, float
    ]  # seconds of each bound: flop, issue, lsu, l2, dram, launch (summed over kernels)
    occupancy: float  # theoretical occupancy of the longest kernel (active warps / max warps per SM)
    limiter: str  # the bound that sets the longest kernel's time
    blocks_per_sm: int  # of the longest kernel
    registers: int  # per thread, of the longest kernel (ptxas or the model's estimate)
    spilled_registers: int = 0  # per thread, of the longest kernel: values kept in local memory

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"terms": dict(self.terms)}


def estimate(
    features: KernelFeatures | Sequence[KernelFeatures],
    profile,
    registers: int | Mapping[str, int] | None = None,
    efficiency: Efficiency | None = None,
    spill_bytes: int | Mapping[str, int] | None = None,
) -> GpuEstimate:
    """Estimated time of one kernel, or of a module's kernels run one after another.

    `profile` is a HardwareProfile of kind gpu (or a GpuDevice); `registers` are ptxas counts per thread (one
    number, or per kernel name); without them the model estimates registers from the local arrays. `spill_bytes`
    are ptxas's spill stores + loads per kernel (bytes), used with ptxas's registers.
    Raises GpuLaunchError when a kernel cannot launch on this GPU.
    """
    dev = profile if isinstance(profile, GpuDevice) else GpuDevice.from_profile(profile)
    eff = efficiency or Efficiency()
    kernels = [features] if isinstance(features, KernelFeatures) else list(features)
    if not kernels:
        raise ValueError("no kernels to estimate")
    parts = []
    for k in kernels:
        regs = registers.get(k.name) if isinstance(registers, Mapping) else registers
        spills = spill_bytes.get(k.name) if isinstance(spill_bytes, Mapping) else spill_bytes
        parts.append(_kernel(k, dev, regs, eff, spills))
    longest = max(parts, key=lambda e: e.seconds)
    terms: dict[str, float] = {}
    for e in parts:
        for name, v in e.terms.items():
            terms[name] = terms.get(name, 0.0) + v
    return GpuEstimate(
        sum(e.seconds for e in parts),
        terms,
        longest.occupancy,
        longest.limiter,
        longest.blocks_per_sm,
        longest.registers,
        longest.spilled_registers,
    )


def register_estimate(k: KernelFeatures) -> int:
    """Registers per thread the kernel wants, without ptxas: a base for addresses and loop state plus the local
    arrays (twice: the accumulators and the operands staged next to them). An estimate; ptxas counts replace it.
    Not capped: what exceeds the per-thread limit spills (see `_kernel`)."""
    return int(24 + 2 * k.local_elements_per_thread)


def _kernel(k: KernelFeatures, dev: GpuDevice, registers: int | None, eff: Efficiency,
            spill_bytes: int | None = None) -> GpuEstimate:
    T, B = k.threads_per_block, max(1, k.grid_blocks)
    if T > dev.max_threads_per_block:
        raise GpuLaunchError(
            f"{k.name}: {T} threads per block exceed the {dev.max_threads_per_block} of {dev.name}"
        )
    if k.smem_bytes_per_block > dev.max_shared_memory_per_block:
        raise GpuLaunchError(
            f"{k.name}: {k.smem_bytes_per_block} B of shared memory per block exceed the "
            f"{dev.max_shared_memory_per_block} B of {dev.name}"
        )
    W = math.ceil(T / WARP)
    demand = registers if registers is not None else register_estimate(k)
    # TVM emits __launch_bounds__(T), so ptxas caps registers at what one block of T threads can be given;
    # the rest of the values spill to local memory
    cap = min(dev.max_registers_per_thread, dev.registers_per_sm // (W * WARP))
    R = max(1, min(demand, cap))
    if registers is not None:
        spilled = math.ceil((spill_bytes or 0) / 8)
    else:
        spilled = max(0, demand - cap)
    spill_ops = 2.0 * spilled / (R + spilled) * k.fp_instr_per_thread if spilled else 0.0
    unit = dev.register_allocation_unit
    Rw = math.ceil(R * WARP / unit) * unit
    smem = k.smem_bytes_per_block + dev.reserved_shared_memory_per_block_bytes
    by_smem = dev.shared_memory_per_sm_bytes // smem if smem else dev.max_blocks_per_sm
    per_sm = min(dev.max_blocks_per_sm, dev.max_warps_per_sm // W, dev.registers_per_sm // (Rw * W), by_smem)
    if per_sm < 1:
        raise GpuLaunchError(f"{k.name}: one block does not fit an SM of {dev.name}")
    occupancy = per_sm * W / dev.max_warps_per_sm
    sms_busy = min(dev.sm_count, B)
    resident = min(per_sm, math.ceil(B / dev.sm_count))
    active_warps = resident * W
    imb = math.ceil(B / dev.sm_count) * dev.sm_count / B
    f = dev.clock_hz

    lanes_per_scheduler = dev.fp32_lanes_per_sm / dev.schedulers_per_sm
    needed = dev.schedulers_per_sm * dev.alu_latency_cycles * lanes_per_scheduler / WARP
    e_alu = min(1.0, active_warps * max(1.0, k.ilp) / needed)

    warp_total = W * B  # warps launched
    t_flop = (
        (
            k.fp_instr_per_thread * WARP / dev.fp32_lanes_per_sm
            + k.sfu_instr_per_thread * WARP / SFU_LANES_PER_SM
        )
        * warp_total
        / (dev.sm_count * f)
        * imb
        / (e_alu * eff.flop)
    )
    t_issue = (
        (k.instr_per_thread + spill_ops)
        * warp_total
        / (dev.sm_count * dev.schedulers_per_sm * f)
        * imb
        / (e_alu * eff.issue)
    )
    wavefronts = (k.shared_wavefronts_per_block + k.l1_wavefronts_per_block + spill_ops * W) * B
    t_lsu = wavefronts / (dev.sm_count * f * dev.lsu_bytes_per_cycle_per_sm / 128) * imb / eff.lsu

    # L1 reuse across iterations holds only while the resident blocks' lines fit the L1 beside shared memory
    l1 = dev.l1_bytes_per_sm
    if dev.unified_l1_shared_bytes_per_sm:
        l1 = max(0, dev.unified_l1_shared_bytes_per_sm - resident * smem)
    working = resident * k.l1_working_set_bytes_per_block
    fit = 1.0 if working <= l1 else (l1 / working if working else 1.0)
    l2_sectors = fit * k.l2_sectors_per_block + (1 - fit) * k.l2_sectors_no_reuse_per_block
    l2_bytes = SECTOR_BYTES * l2_sectors * B
    if spill_ops:
        # spilled values stay in L1 while the resident threads' local memory fits beside the other lines
        local = resident * T * spilled * 4
        spill_fit = 1.0 if local <= max(0, l1 - working) else max(0, l1 - working) / local
        l2_bytes += (1 - spill_fit) * spill_ops * 4 * T * B

    in_flight = (
        sms_busy * active_warps * min(MAX_LOADS_IN_FLIGHT, max(1.0, k.mlp)) * max(k.bytes_per_request, 4.0)
    )
    m_l2 = min(1.0, in_flight / (dev.l2_bytes_per_s * dev.l2_latency_cycles / f))
    m_dram = min(1.0, in_flight / (dev.dram_bytes_per_s * dev.dram_latency_cycles / f))
    t_l2 = l2_bytes / (dev.l2_bytes_per_s * m_l2 * eff.l2)

    if k.footprint_bytes <= dev.l2_bytes:
        dram = float(k.footprint_bytes)
    else:
        concurrent = min(B, dev.sm_count * per_sm)
        waves = math.ceil(B / concurrent)
        per_wave = min(k.footprint_bytes, concurrent * k.unique_bytes_per_block * k.wave_sharing)
        dram = max(float(k.footprint_bytes), min(l2_bytes, waves * per_wave))
    t_dram = dram / (dev.dram_bytes_per_s * m_dram * eff.dram)

    terms = {"flop": t_flop, "issue": t_issue, "lsu": t_lsu, "l2": t_l2, "dram": t_dram}
    limiter = max(terms, key=terms.get)  # type: ignore[arg-type]
    launch = dev.launch_overhead_s * eff.launch
    seconds = terms[limiter] + launch
    terms["launch"] = launch
    return GpuEstimate(seconds, terms, occupancy, limiter, per_sm, R, spilled)
