#!/bin/sh
# Every table and refitted profile in this folder, from the committed live runs (CPU only,
# ~10 min on 2 cores). Run from anywhere: `sh results/live-h200/regenerate.sh`.
set -e
cd "$(dirname "$0")"
P=profile-at-run-time.json  # the profile the live runs predicted (and their policies decided) with
bulletsim fidelity runs/* --profile $P --table fidelity.md > fidelity.log
bulletsim calibrate --from-live runs/splitwise-* --profile $P --out refit-splitwise.json > refit-splitwise.log
bulletsim calibrate --from-live runs/sharegpt-* --profile $P --out refit-sharegpt.json > refit-sharegpt.log
bulletsim fidelity runs/* --profile $P --held-out workload --table fidelity-heldout.md > fidelity-heldout.log
bulletsim fidelity runs/* --profile $P --held-out load --table fidelity-heldout-load.md > fidelity-heldout-load.log
bulletsim fidelity runs/* --table fidelity-newest-profile.md > fidelity-newest-profile.log
