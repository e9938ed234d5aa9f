"""The calibrator: real Llama kernels under SM partitions on a real GPU -> a latency profile.

Map (GPU-only modules import torch; the rest run anywhere):

    cli.py          `bulletsim calibrate | calibrate-fit | calibrate-derive | calibrate-selftest`
    run.py          GPU check, model + partition pool, sweep, metadata          [GPU]
    sweep.py        walks a grid: which points, resume, watchdog                 [GPU]
    measure.py      one per-op+layer / step / co-run sample                      [GPU]
    sweep_shapes.py shape fields of a sample key
    grids.py        standard, --quick, mechanisms (libsmctrl vs green), TP-shard grids
    samples.py      resumable JSONL sample store, parquet
    fit.py          SRM fit (scipy), measured grid, held-out errors
    gemm_faults.py  GEMM samples timed on a wrongly chosen kernel (a rule; the fit drops them)
    pipeline.py     samples -> profile -> report (+ install)
    fit_inputs.py   calibrate-fit's samples / meta.json checks (before any write)
    sample_identity.py  the samples' run (gpu, model, tp, SMs) must be the meta.json's
    install.py      installing a profile: never over one silently, kept sections
    report.py       calibration report (markdown + plots)
    derive.py       derived profiles for other GPUs (datasheet transfer)
    transfer_error.py  a derived profile's error estimate (self-transfer on the source GPU)
    kernel_bench.py kernel paths per partition, old vs new (GEMMs, attention)     [GPU]
    device_run.sh   one device call: bench / quick / standard, JIT cache saved
    moe_kernels.py  MoE on one GPU: router, align, grouped GEMMs, QK-norm, refs   [GPU]
    moe_model.py    Qwen3-MoE layers at TP / EP per-GPU shapes for the sweep     [GPU]
    moe_bench.py    MoE kernel checks, grouped GEMM vs a loop of GEMMs           [GPU]
    moe_calibrate.py  Qwen3-235B-A22B TP 8 / EP 8 calibration sweeps             [GPU]
    moe_summary.py  the table that ends a MoE device round
    moe_fit.py      MoE samples -> TP 8 / EP 8 profiles, skewed-routing check, H20
    moe_devrun.sh   the MoE device round script (SUITE=r1 | r2)
    collectives.py  NCCL collectives on 2+ GPUs, under partitions, co-run        [GPU]
    collectives_fit.py  its output -> measured all-reduce table + report (alpha-beta)
    shard_profile.py    TP shard profile + its group's all-reduce section
    derive_shard.py     a TP shard profile for another tp by the SRM's shape ratio
    shard_probe.py  one shard point stage by stage; names a stage that hangs       [GPU]
    device_run_large.sh device stages of issue 13 (collectives, 70B TP shards)
    synthetic.py    samples from a known SRM (tests, dry runs)
    explore.py      one-shot device capability check                             [GPU]
    libsmctrl_check.py  libsmctrl %smid self-test, CUDA graph under a mask, re-mask cost [GPU]
    masked_gemm.py  GEMMs under TPC masks, each under a watchdog (hangs recorded) [GPU]
    mechanism_compare.py  libsmctrl vs green samples at equal SM counts (tables)
    mps_corun.py    MPS two-process layout: daemon, prefill + decode processes
    mps_worker.py   one lane process of that layout                              [GPU]
    mechanisms_device_run.sh  device call for issue 16 (masks / calib / mps stages)
    gpu_names.py    CUDA device name -> bulletsim GPU key
    tool_cli.py     the `python -m calibrate.<tool>` front door: one-line errors, exit 2, GPU check
    own_files.py    an output file's provenance marker (replace only the tool's own), atomic writes
    __main__.py     `python -m calibrate` (the same commands without the bulletsim CLI)

The GPU runtime it measures (partitions, model forward, kernels, attention backends, graphs,
timing, %smid probe, watchdog) is `bulletsim.gpu`, shared with the live engine. The profile
format and `ProfileLatency` live in `bulletsim/latency/`.
"""
