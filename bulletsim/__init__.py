"""bulletsim: how much does spatial-temporal GPU sharing (Bullet) buy over chunked prefill?

Map of the package (data flows top to bottom):

    workload/        trace loaders, arrivals, embedded offline models  -> RequestSpec list
    core.py          shared vocabulary: RequestSpec, Request, WorkShape, Work, CoRunner, SLO
    hardware.py      GPU specs (A100, H100, H20, H200)
    partitioning.py  SM partition mechanisms: name -> granularity, re-partition cost + source
    hf_config.py     a model shape from a Hugging Face config.json (--model-config)
    files.py         require_file: one check for every path given where a file belongs
    models.py        model shapes (Llama-3.1-8B/70B, Qwen3-235B-A22B)
    latency/         LatencyModel interface; roofline (SRM), calibrated profile, constant,
                     host terms (launch-bound eager steps, inter-step gaps: host.py),
                     TP all-reduce (collectives.py: measured tables, alpha-beta ring transfer)
    kvcache.py       paged KV block accounting
    decode_pool.py   requests in decode, stepped in O(1) per iteration
    state.py         queues + KV + decode pool shared by a run's lanes; itl.py (ITL samples)
    policies/        pure decision objects: base.py (the Policy protocol), chunked.py
                     (baseline), bullet.py (Bullet), two_lane.py + split_planner.py +
                     batching.py (two-lane machinery, SM planner, batch shapes), ablations.py
                     (static split, naive, prefill-first), pdmux.py + pdmux_params.py +
                     pdmux_table.py (SGLang's PD-Multiplexing, its SLO variant: policy,
                     parameters, split table), registry.py (names -> params),
                     describe.py (what `bulletsim policies` prints)
    engine_api.py    the Engine protocol every engine keeps (simulated and live)
    engine.py        the SimPy engine (lanes as processes; the only simpy import);
                     client.py (concurrency-limited benchmark client), early_stop.py (stop a
                     run whose SLO misses already decide it)
    run.py           config -> Run (built pieces) -> engine -> RunResult (records, metrics,
                     invariants, metadata); metrics.py, records.py, invariants.py;
                     simulate.py (the old name of run.simulate)
    results.py       results directories (atomic, deterministic); report.py, plots.py;
                     outdir.py (the marker-owned results folders, checked before any work),
                     own_outputs.py (fidelity tables / refit profiles it wrote, by content)
    sweep.py         policies x rates x workloads; sweep_points.py (one point as a row),
                     capacity.py (capacity search), sweep_capacity.py + intervals.py
                     (capacity over seeds, confidence intervals), steady_state.py (queue
                     growth checks), sweep_report.py (tables), sweep_cli.py (`sweep`),
                     executors.py + ray_executor.py (local pool or Ray); design.py,
                     design_report.py, design_cli.py (`design`: a TOML grid of sweeps);
                     norm_latency.py (capacity under a normalized-latency SLO, mean E2E
                     per output token: the paper's large-model criterion);
                     paper_table.py (a table per workload convention beside a paper's)
    fidelity/        simulated vs measured (vLLM / SGLang benchmark results, live runs)
    config.py        the run config: one frozen dataclass tree, TOML + overrides, validation;
                     float_params.py (the range of every float parameter: finite, per unit);
                     policy_spec.py (`--policy NAME:key=value` specs, and the sources of a
                     policy's parameters checked against each other)
    cli.py           `bulletsim run | live | sweep | design | traces | calibrate | policies`;
                     run_options.py (run's options -> checked config and results folder),
                     cli_errors.py (one-line errors, exit 2), progress.py (progress on
                     stderr, unwrapped output when piped)
    data/profiles/   calibrated latency profiles (H200 measured; A100/H100/H20 derived)
    live/            live mode: the same policies on a real GPU in wall-clock time (host
                     loop, fake and GPU executors, KV page table, `bulletsim live`)
    gpu/             the GPU runtime (torch, imported lazily): partitions, the Llama forward,
                     kernels, attention backends, graphs, timing, the %smid probe

The calibrator (measuring and fitting real GPU kernels under SM partitions) lives in the
top-level `calibrate/` package and `native/`; it imports `bulletsim.gpu` on demand.
"""

__version__ = "0.1.0"
