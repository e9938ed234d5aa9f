#!/usr/bin/env bash
# R2 half for one GPU: the splitwise runs (see live_h200_devrun.sh)
cd "$(dirname "$0")"
SUITE=splitwise exec bash devrun.sh
