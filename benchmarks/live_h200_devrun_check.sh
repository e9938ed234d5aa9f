#!/usr/bin/env bash
# R3: the --weights GPU check and the decode benchmark (with the experimental skinny GEMM)
cd "$(dirname "$0")"
SUITE=check exec bash devrun.sh
