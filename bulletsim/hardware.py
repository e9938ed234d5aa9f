"""GPU specifications: the datasheet numbers the analytic latency model starts from.

These are *datasheet leads* (DESIGN.md): peak numbers a real kernel never reaches. The roofline
turns them into predictions with per-op-class efficiencies, and `bulletsim calibrate` replaces
them with measurements. Memory sizes use GiB for the datasheet's "GB" because that is what
nvidia-smi reports for these boards (e.g. 81920 MiB on an A100-80GB).
"""

from __future__ import annotations

from dataclasses import dataclass

_GIB = 2**30
_MIB = 2**20


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One GPU model. Rates are per GPU, dense (no 2:4 sparsity), bf16 tensor cores."""

    name: str
    num_sms: int
    peak_bf16_flops: float  # FLOP/s, dense bf16 tensor core
    mem_bw_bytes_s: float  # HBM bandwidth, bytes/s
    memory_bytes: int
    l2_bytes: int
    green_ctx_granularity: int  # green-context SM split granularity (requests round up to it)
    green_ctx_min_sms: int  # smallest green-context partition
    interconnect_bytes_s: float  # NVLink per GPU, one direction (what a ring all-reduce uses)
    source: str
    sms_per_tpc: int = 2  # libsmctrl masks whole TPCs
    # GPUs on one NVLink/NVSwitch node: the HGX A100 / H100 / H200 and H20 baseboards hold 8
    # (NVIDIA HGX datasheets); a tensor-parallel group does not leave the node.
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        if self.num_sms < 1 or self.peak_bf16_flops <= 0 or self.mem_bw_bytes_s <= 0:
            raise ValueError(f"GPU {self.name!r}: num_sms, peak flops and bandwidth must be > 0")

    @property
    def ridge_intensity(self) -> float:
        """FLOP per byte above which a kernel is compute-bound on the whole GPU."""
        return self.peak_bf16_flops / self.mem_bw_bytes_s

    @property
    def num_tpcs(self) -> int:
        return self.num_sms // self.sms_per_tpc


# Green-context granularity: CUDA 12.4 driver API, "Green Contexts" section guideline for
# cuDevSmResourceSplitByCount: CC 8.X minimum 4 SMs in multiples of 2; CC 9.0+ minimum 8 in
# multiples of 8 (confirmed on an H200, DESIGN.md: a request for 10 rounds up to 16).
_AMPERE_GC = {"green_ctx_granularity": 2, "green_ctx_min_sms": 4}
_HOPPER_GC = {"green_ctx_granularity": 8, "green_ctx_min_sms": 8}

GPUS: dict[str, GPUSpec] = {
    "a100": GPUSpec(
        name="a100",
        num_sms=108,
        peak_bf16_flops=312e12,
        mem_bw_bytes_s=2.039e12,
        memory_bytes=80 * _GIB,
        l2_bytes=40 * _MIB,
        interconnect_bytes_s=300e9,  # NVLink3 600 GB/s bidirectional
        source="NVIDIA A100 datasheet (SXM4 80GB): 108 SMs, 312 TFLOP/s bf16 dense, "
        "2,039 GB/s HBM2e, 40 MB L2, NVLink 600 GB/s",
        **_AMPERE_GC,
    ),
    "h100": GPUSpec(
        name="h100",
        num_sms=132,
        peak_bf16_flops=989e12,
        mem_bw_bytes_s=3.35e12,
        memory_bytes=80 * _GIB,
        l2_bytes=50 * _MIB,
        interconnect_bytes_s=450e9,  # NVLink4 900 GB/s bidirectional
        source="NVIDIA H100 datasheet (SXM5 80GB): 132 SMs, 989 TFLOP/s bf16 dense "
        "(1,979 with sparsity), 3.35 TB/s HBM3, 50 MB L2, NVLink 900 GB/s",
        **_HOPPER_GC,
    ),
    "h20": GPUSpec(
        name="h20",
        num_sms=78,
        peak_bf16_flops=148e12,
        mem_bw_bytes_s=4.0e12,
        memory_bytes=96 * _GIB,
        l2_bytes=60 * _MIB,
        interconnect_bytes_s=450e9,  # NVLink 900 GB/s bidirectional
        source="NVIDIA H20 product brief: 148 TFLOP/s bf16 dense, 4.0 TB/s HBM3, 96 GB, "
        "60 MB L2, NVLink 900 GB/s; 78 SMs from device queries (not on the brief)",
        **_HOPPER_GC,
    ),
    "h200": GPUSpec(
        name="h200",
        num_sms=132,
        peak_bf16_flops=989e12,
        mem_bw_bytes_s=4.8e12,
        memory_bytes=141 * _GIB,
        l2_bytes=50 * _MIB,
        interconnect_bytes_s=450e9,  # NVLink4 900 GB/s bidirectional
        source="NVIDIA H200 datasheet (SXM 141GB): 989 TFLOP/s bf16 dense, 4.8 TB/s HBM3e, "
        "NVLink 900 GB/s; 132 SMs and 50 MB L2 as H100 SXM (same GH100 configuration)",
        **_HOPPER_GC,
    ),
}

# SM partition mechanisms: one vocabulary for the simulator's policies and the GPU runtime.
# green-ctx: CUDA green contexts (cuDevSmResourceSplitByCount); libsmctrl: TPC stream masks
# (Bullet's artifact); mps: the MPS active-thread percentage (a per-process cap, not a
# reservation); none: no spatial partitioning (a lane gets the whole GPU or nothing).
MECHANISMS = ("libsmctrl", "green-ctx", "mps", "none")


# The one alias table: every command (run, sweep, live, calibrate, --set, config files)
# accepts these names for the `MECHANISMS` they stand for.
MECHANISM_ALIASES = {"green": "green-ctx"}


def _unknown_mechanism(name: object) -> ValueError:
    return ValueError(
        f"unknown SM partition mechanism {name!r}; valid: green (= green-ctx), "
        f"{', '.join(m for m in MECHANISMS if m != 'green-ctx')}"
    )


def check_mechanism(mechanism: str) -> str:
    """`mechanism` if it is one of `MECHANISMS` (canonical names only, as stored in configs
    and profiles); ValueError naming the valid ones otherwise."""
    if mechanism not in MECHANISMS:
        raise ValueError(
            f"unknown SM partition mechanism {mechanism!r}; valid: {', '.join(MECHANISMS)}"
        )
    return mechanism


def resolve_mechanism(name: str) -> str:
    """A mechanism as users type it (any case; "green" = "green-ctx") -> its `MECHANISMS` name;
    ValueError listing the valid choices otherwise."""
    if not isinstance(name, str):
        raise _unknown_mechanism(name)
    key = name.strip().lower()
    key = MECHANISM_ALIASES.get(key, key)
    if key not in MECHANISMS:
        raise _unknown_mechanism(name)
    return key


def partition_unit_sms(mechanism: str, gpu: GPUSpec | None, total_sms: int) -> int:
    """SMs per partition step under `mechanism` on `gpu` (the one source of granularity).

    green-ctx: the spec's split granularity (8 on Hopper, 2 on Ampere; Hopper's rule when the
    GPU is unknown); libsmctrl: one TPC; mps: one TPC as well (measured on the H200 with the
    %smid probe: a 75% cap ran on 98 SMs, 25% on 32, an execution affinity of 32 SMs gave 32:
    whole TPCs); none: the whole GPU."""
    check_mechanism(mechanism)
    if mechanism == "green-ctx":
        return gpu.green_ctx_granularity if gpu is not None else _HOPPER_GC["green_ctx_granularity"]
    if mechanism in ("libsmctrl", "mps"):
        return gpu.sms_per_tpc if gpu is not None else 2
    return total_sms


def min_partition_sms(mechanism: str, gpu: GPUSpec | None, total_sms: int) -> int:
    """Smallest partition `mechanism` can make on `gpu` (green-ctx: the spec's minimum)."""
    if mechanism == "green-ctx":
        return gpu.green_ctx_min_sms if gpu is not None else _HOPPER_GC["green_ctx_min_sms"]
    return partition_unit_sms(mechanism, gpu, total_sms)


# The one GPU-name table (run, sweep, calibrate and live use it): a name is a GPUS key, then
# optional words naming the same board. Users type "h200", "H200", "nvidia-h200"; torch
# reports "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB". Other boards of the same chip
# (PCIe, 40GB, NVL) differ in SMs, memory or bandwidth, so they are unknown, not aliases.
GPU_NAME_WORDS: dict[str, frozenset[str]] = {
    "a100": frozenset({"sxm", "sxm4", "80gb", "hbm2e"}),
    "h100": frozenset({"sxm", "sxm5", "80gb", "hbm3"}),
    "h20": frozenset({"96gb", "hbm3"}),
    "h200": frozenset({"sxm", "141gb", "hbm3e"}),
}


def gpu_key(name: str) -> str | None:
    """The GPUS key a GPU name denotes (case-insensitive, "nvidia" prefix, separators
    "-", "_", " " alike), or None. "NVIDIA A100-SXM4-80GB" -> "a100"."""
    words = name.lower().replace("_", " ").replace("-", " ").split()
    if words[:1] == ["nvidia"]:
        words = words[1:]
    if not words or words[0] not in GPUS:
        return None
    return words[0] if set(words[1:]) <= GPU_NAME_WORDS[words[0]] else None


def get_gpu(name: str) -> GPUSpec:
    """Look up a GPU by name (see `gpu_key`); ValueError listing the valid names otherwise."""
    key = gpu_key(name)
    if key is None:
        raise ValueError(
            f"unknown GPU {name!r}; valid: {', '.join(sorted(GPUS))} (case-insensitive, "
            "e.g. H200, nvidia-h200, 'NVIDIA A100-SXM4-80GB')"
        )
    return GPUS[key]
