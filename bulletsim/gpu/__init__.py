"""The GPU runtime shared by the calibrator (`calibrate/`) and the live engine (`live/`).

Everything here needs torch and a CUDA GPU except where marked; nothing imports torch at
package import, so `import bulletsim.gpu` works anywhere and each module is loaded on use.

    partition.py   Partition / PartitionPool interface; FullDevicePool (mechanism "none")
    green.py       green contexts: disjoint pairs from one cuDevSmResourceSplitByCount  [GPU]
    libsmctrl.py   user-built libsmctrl.so via ctypes (TPC stream masks)     [loader: CPU]
    mps.py         MPS active-thread percentage (two-process layout)          [env: CPU]
    pools.py       make_pool(mechanism, gpu): the one module that knows every mechanism
    llama.py       Llama decoder as per-kernel launches: weights, paged KV pool,
                   prefill/decode batches, layer windows (`step_kernels(layers=...)`)  [GPU]
    kernels.py     Triton RMSNorm / RoPE / SiLU*mul / split-K paged decode            [GPU]
    gemm.py        partition-aware GEMM paths (cuBLAS, cuBLASLt SM target, Triton)    [GPU]
    selection.py   which kernel runs an op on a partition (choice tables, rules)      [CPU]
    triton_matmul.py  persistent Triton matmul, one program per partition SM          [GPU]
    triton_skinny.py  split-K GEMM for <= 64 rows: benchmark only, not priced         [GPU]
    attention.py   prefill / decode attention backends (flashinfer, SDPA, Triton)     [GPU]
    check.py       every kernel of a layer against a float32 reference                [GPU]
    graphs.py      CUDA-graph capture of a step on a partition's stream               [GPU]
    timing.py      CUDA events, spin-ahead, graph replays, NVML clocks                [GPU]
    probe.py       %smid probe (native/ library, else Triton) and verify(partition)   [GPU]
    watchdog.py    hang guard for masked launches                                     [CPU]

SM partition vocabulary and granularity come from `bulletsim.hardware` (MECHANISMS,
partition_unit_sms), shared with the simulator's policies.
"""
