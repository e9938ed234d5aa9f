"""Fidelity: how close is a simulation to what a real server measured for the same requests?

Map of the package (one noun per file):
    observed.py       Observed, one side of a comparison (per-request latencies, ITL sample)
    compare.py        compare(): sim vs measured, TTFT/TPOT/ITL/E2E, throughput, SLO attainment
    vllm_result.py    reader for `vllm bench serve --save-result --save-detailed` JSON
    sglang_result.py  reader for `python -m sglang.bench_serving --output-details` JSONL
    measured.py       MeasuredRun (a benchmark client's per-request results), file parsing
    reader.py         read_measured: detect vLLM or SGLang and dispatch
    resimulate.py     the measured requests as a workload (arrivals, client), simulated, compared
    report.py         the comparison as a terminal table
    cli.py            `bulletsim fidelity --measured FILE`: re-simulate and compare
    live_shapes.py    the WorkShape of every iteration of a live run (recorded or replayed)

The comparison module knows nothing about where a side comes from: the live engine's run
directories and the benchmark readers both build `Observed` values and share one report.
"""
