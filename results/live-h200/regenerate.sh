#!/bin/sh
# Every table and refitted profile in this folder, from the committed live runs (CPU only,
# ~5-15 min on 2 cores). Run from anywhere: `sh results/live-h200/regenerate.sh`.
set -e
cd "$(dirname "$0")"
# the logs are rich tables: a fixed width keeps them byte-identical whatever the terminal
export COLUMNS=1000
fidelity_set() {  # runs folder, profile the runs predicted (and their policies decided) with, output folder
    R=$1 P=$2 O=$3
    bulletsim fidelity $R/* --profile $P --table $O/fidelity.md > $O/fidelity.log
    bulletsim calibrate --from-live $R/splitwise-* --profile $P --out $O/refit-splitwise.json > $O/refit-splitwise.log
    bulletsim calibrate --from-live $R/sharegpt-* --profile $P --out $O/refit-sharegpt.json > $O/refit-sharegpt.log
    bulletsim fidelity $R/* --profile $P --held-out workload --table $O/fidelity-heldout.md > $O/fidelity-heldout.log
    bulletsim fidelity $R/* --profile $P --held-out load --table $O/fidelity-heldout-load.md > $O/fidelity-heldout-load.log
}
# session S5's runs (code 306cf4f: the engine's small kernels launched directly, the kernel-
# choice lookup indexed, the persistent GEMM compiled once per tile config, a host-speed probe
# in live.json; runs-s5/),
# made with the installed profile (= profile-r2-run-time)
mkdir -p s5
fidelity_set runs-s5 profile-r2-run-time.json s5
# the S4 and S5 runs held out by session: each set judged by the profile refitted on the other
bulletsim calibrate --from-live runs-s4/* --profile profile-r2-run-time.json --out s5/refit-s4-runs.json > s5/refit-s4-runs.log
bulletsim fidelity runs-s5/* --profile s5/refit-s4-runs.json --policy-profile profile-r2-run-time.json --table s5/fidelity-by-s4-fit.md > s5/fidelity-by-s4-fit.log
# session S4's runs (code 61df138: chunked-2048 and Bullet at three loads on each workload, with
# the SM clock per iteration; runs-s4/), made with the installed profile (= profile-r2-run-time)
mkdir -p s4
fidelity_set runs-s4 profile-r2-run-time.json s4
# round R2's runs (engine R2, code d99a77c), made with the installed profile of that time
fidelity_set runs profile-r2-run-time.json .
# the first session's runs, and against the profile re-measured after them
fidelity_set runs-first profile-at-run-time.json first
bulletsim fidelity runs-first/* --profile profile-r2-run-time.json --table first/fidelity-newest-profile.md > first/fidelity-newest-profile.log
# pdmux-slo's six live runs (round R1 of 2026-12-01, code 798a7e0; runs-pdmux-slo/): with the
# profile they ran with, and with the profile refitted on the 18 runs of runs/ (chunked-2048,
# Bullet, pdmux: a policy the refit never saw); the tables above stay on those 18 runs
bulletsim fidelity runs-pdmux-slo/* --profile profile-r2-run-time.json --table pdmux-slo/fidelity.md > pdmux-slo/fidelity.log
bulletsim calibrate --from-live runs/* --profile profile-r2-run-time.json --out pdmux-slo/refit-r2-runs.json > pdmux-slo/refit-r2-runs.log
bulletsim fidelity runs-pdmux-slo/* --profile pdmux-slo/refit-r2-runs.json --policy-profile profile-r2-run-time.json --table pdmux-slo/fidelity-refit-r2-runs.md > pdmux-slo/fidelity-refit-r2-runs.log
# the repeatability runs of session S3 (round S3R4, code 9b3d877; repeats/runs/): chunked-2048
# and Bullet on splitwise at 19 req/s, three runs each, judged held out by workload (the
# profile refitted on the sharegpt runs of runs/, as the splitwise rows of fidelity-heldout.md)
bulletsim fidelity repeats/runs/* --profile refit-sharegpt.json --policy-profile profile-r2-run-time.json --table repeats/fidelity-heldout.md > repeats/fidelity-heldout.log
