"""The calibrator: real Llama kernels under SM partitions on a real GPU -> a latency profile.

Map (GPU-only modules import torch; the rest run anywhere):

    cli.py          `bulletsim calibrate | calibrate-fit | calibrate-derive` (register(app))
    run.py          GPU check, model + partition pool, sweep, metadata          [GPU]
    partition.py    Partition / PartitionPool; green contexts (disjoint pairs from one split)
    libsmctrl.py    user-built libsmctrl.so via ctypes (TPC stream masks)
    mps.py          MPS active-thread percentage (two-process layout)
    probe.py        %smid probe: native/ library when built, else Triton         [GPU]
    llama.py        Llama decoder as per-kernel launches, paged KV pool          [GPU]
    kernels.py      Triton RMSNorm / RoPE / SiLU*mul / split-K paged decode      [GPU]
    attention.py    flashinfer when importable, else SDPA / Triton               [GPU]
    check.py        every kernel against a float32 reference before timing       [GPU]
    timing.py       CUDA events, spin-ahead, graph replays, NVML clocks          [GPU]
    sweep.py        per-op / layer / step / co-run samples                       [GPU]
    watchdog.py     hang guard for masked launches
    grids.py        standard and --quick grids
    samples.py      resumable JSONL sample store, parquet
    fit.py          SRM fit (scipy), measured grid, held-out errors
    pipeline.py     samples -> profile -> report (+ install)
    report.py       calibration report (markdown + plots)
    derive.py       derived profiles for other GPUs (datasheet transfer)
    synthetic.py    samples from a known SRM (tests, dry runs)
    explore.py      one-shot device capability check                             [GPU]

The profile format and `ProfileLatency` live in `bulletsim/latency/profile.py`.
"""
