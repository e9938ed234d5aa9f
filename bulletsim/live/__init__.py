"""Live mode: the same policy objects drive a real engine on a real GPU, in wall-clock time.

    executor.py   the seam: `Executor` (launch a Work on a lane's SM partition, poll for its
                  completion, measured GPU seconds) and `Launch` (one unit of work in flight)
    fake.py       `FakeExecutor`: kernels replaced by timers that take the latency model's
                  predicted time on a virtual clock (CI, control-loop tests)
    engine.py     `LiveEngine`: the single-threaded host loop (arrivals in wall-clock time,
                  idle lanes ask the policy for work, completions reported with GPU end times)
    gc_freeze.py  Python's GC collected and frozen after setup, for the loop (as vLLM, SGLang)
    records.py    per-iteration live columns (measured vs predicted seconds, co-runner, CPU,
                  SM clock)
    pages.py      `PageTable`: real KV page ids per request, mirroring `KVCache` (numpy only)
    run.py        config -> live run -> the same results as `bulletsim run` plus live.json
    cli.py        the `bulletsim live` command
    gpu/          the GPU executor (torch, flashinfer; imported only when asked for)
    rundir.py     reading a live run's results directory; runcheck.py / runvalues.py vet its
                  files and values up front; run_config.py its config.json
    engine_exec.py how the run's engine ran (padded decode graphs, eager prefill kernel) as
                  profile exec keys, for re-pricing it
    fidelity.py   re-simulate a live run's requests and config; sim-vs-live error tables;
                  fidelity_cli.py (`bulletsim fidelity RUN_DIR... [--held-out workload]`),
                  fidelity_folds.py (held-out groups of runs: by workload or by load)
    refit.py      refit a profile's overhead, contention, kernel-scale and host terms on live
                  iterations; refit_cli.py (`bulletsim calibrate --from-live RUN_DIR...`)

Nothing here imports torch except `gpu/`, and nothing imports simpy except the re-simulation
in fidelity.py (through bulletsim.simulate).
"""
