#!/usr/bin/env bash
# R2 half for one GPU: the sharegpt runs (see live_h200_devrun.sh)
cd "$(dirname "$0")"
SUITE=sharegpt exec bash devrun.sh
