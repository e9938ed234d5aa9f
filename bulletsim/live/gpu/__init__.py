"""The GPU executor of the live engine (torch, flashinfer, green contexts; GPU-only).

model.py     Llama weights (random bf16 at the real shapes), the paged KV pool, one
             layer / head forward over a batch's buffers
batches.py   host-side metadata of a launch (positions, KV slots, flashinfer layouts)
graphs.py    decode steps as CUDA graphs per (partition, padded batch bucket)
executor.py  `GpuExecutor`: lanes on green-context partitions, launches, CUDA events
"""
