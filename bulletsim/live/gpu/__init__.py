"""The GPU executor of the live engine (torch, flashinfer, green contexts; GPU-only).

model.py       Llama weights (random bf16 at the real shapes, or a checkpoint), the paged KV
               pool, one layer / head forward over a batch's buffers with the profile's GEMMs
checkpoint.py  `--weights DIR`: a Hugging Face safetensors checkpoint, checked from its
               headers (no torch) and read into the engine's fused layout
batches.py     host-side metadata of a launch (positions, KV slots, flashinfer layouts)
graphs.py      decode steps as CUDA graphs per (partition, padded batch bucket)
lanes.py       which green-context partition (stream) a lane's launch of n SMs runs on
meta.py        what a run ran on and with (live.json), the kernel-choice rules
executor.py    `GpuExecutor`: lanes on green-context partitions, launches, CUDA events
"""
