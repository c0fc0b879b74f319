#!/usr/bin/env bash
# The GPU check of issue 12, as one prepared script for a rented machine (at most 8 minutes).
#
#   bash benchmarks/device_check.sh              # on the GPU machine, from the repository root
#   bash benchmarks/device_check.sh --dry-run    # the same steps on CPU in about a minute:
#                                                # no install, tiny settings, tests only collected
#   bash benchmarks/device_check.sh --no-install # skip the pip step (jax with CUDA is there)
#
# It installs the project with a CUDA jaxlib (`pip install -e '.[all]' 'jax[cuda12]'`), runs the
# test files that matter on the GPU (train, parallel, nn, explain, robust), then the benchmarks
# bench_conv.py, bench_fit.py, bench_fit_many.py --n-models 1000 and bench_peers.py (the jax peers
# only: its PyTorch peer runs on CPU, and a CUDA torch wheel is too large to install within the
# budget), each under `timeout`, and writes ONE markdown file with the date, the device
# (nvidia-smi), the versions and every step's output: $OUT/device_results.md when $OUT is set,
# else benchmarks/device_results.md. A step that fails or runs out of time is recorded as such
# and the next step still runs; the exit status is 1 if any step failed.
#
# Time budget in seconds, 480 in all ($DEVICE_CHECK_SECONDS); a step never gets more than what is
# left: install 150, tests 120, bench_conv 40, bench_fit 60, bench_fit_many 60, bench_peers 60.
# $PYTHON picks the interpreter (default: python).
set -u

DRY_RUN=0
INSTALL=1
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1; INSTALL=0 ;;
        --no-install) INSTALL=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
                   exit 0 ;;
        *) echo "device_check.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python}
TOTAL=${DEVICE_CHECK_SECONDS:-480}
START=$(date +%s)
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    RESULTS="$OUT/device_results.md"
else
    RESULTS="benchmarks/device_results.md"
fi
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
FAILED=()

left() { echo $(( TOTAL - ($(date +%s) - START) )); }

# step TITLE LIMIT COMMAND...: runs COMMAND under `timeout` (SIGINT first, so that pytest still
# prints its summary; SIGKILL 10 s later) and appends its output to the results.
step() {
    local title=$1 limit=$2
    shift 2
    local budget
    budget=$(left)
    if [ "$budget" -lt "$limit" ]; then limit=$budget; fi
    if [ "$limit" -le 5 ]; then
        printf '\n## %s\n\nskipped: the %s s budget is spent.\n' "$title" "$TOTAL" >> "$RESULTS"
        FAILED+=("$title (skipped)")
        return
    fi
    echo "== $title (limit ${limit} s)" >&2
    local t0 rc
    t0=$(date +%s)
    timeout -s INT -k 10 "$limit" "$@" > "$LOG/out" 2>&1
    rc=$?
    local status="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="TIMED OUT after ${limit} s"
    elif [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
    fi
    [ "$status" = "ok" ] || FAILED+=("$title: $status")
    {
        printf '\n## %s\n\n' "$title"
        printf '`%s` — %s, %s s\n\n' "$(printf '%q ' "$@" | sed 's/ $//')" "$status" "$(( $(date +%s) - t0 ))"
        # Tables print as markdown; everything else (warnings, pytest lines) as a text block.
        awk '/^\|/ { if (code) { print "```"; code = 0 } print; next }
             { if (!code) { print "```"; code = 1 } print }
             END { if (code) print "```" }' < <(tail -n 80 "$LOG/out")
    } >> "$RESULTS"
    echo "   $status" >&2
}

{
    echo "# Device check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "- mode: $([ "$DRY_RUN" -eq 1 ] && echo 'dry run (CPU, tiny settings: the times mean nothing)' || echo 'full')"
    echo "- host: $(uname -srm), $(nproc) CPUs"
    echo "- matmul/conv precision: ${JAX_DEFAULT_MATMUL_PRECISION:-JAX default (TF32 allowed for float32 on recent GPUs; JAX_DEFAULT_MATMUL_PRECISION=highest turns it off)}"
    if command -v nvidia-smi > /dev/null 2>&1; then
        echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"
    else
        echo "- device: no nvidia-smi on this machine"
    fi
} > "$RESULTS"

if [ "$INSTALL" -eq 1 ]; then
    # jax[cuda12] brings the CUDA 12 PJRT plugin and the NVIDIA libraries as wheels (driver >= 525).
    # --retries/--timeout: fail within the budget, not after pip's default retries, if the
    # machine cannot reach the package index (the steps then run on what is installed).
    step "install" 150 "$PYTHON" -m pip install -q --retries 1 --timeout 30 -e '.[all]' \
        'jax[cuda12]'
fi

VERSIONS='
import sys, jax, jaxlib, optax, flax
import jaxlearn as jl
print("- versions: python", sys.version.split()[0], "| jax", jax.__version__, "| jaxlib",
      jaxlib.__version__, "| optax", optax.__version__, "| flax", flax.__version__)
print("- jax backend:", jax.default_backend(), "| devices:", jax.devices())
print("- conv impl=\"auto\" picks:", jl.nn.conv_impl("auto"))
'
printf '\n## Versions\n\n' >> "$RESULTS"
timeout 60 "$PYTHON" -c "$VERSIONS" >> "$RESULTS" 2>&1 || {
    echo "- versions: jax or jaxlearn does not import (see the steps below)" >> "$RESULTS"
    FAILED+=("versions: jax or jaxlearn does not import")
}

TESTS=(tests/test_train.py tests/test_parallel.py tests/test_nn.py tests/test_explain.py
       tests/test_robust.py)
if [ "$DRY_RUN" -eq 1 ]; then
    step "tests (collected only)" 60 "$PYTHON" -m pytest -qq -p no:cacheprovider -n 0 \
        --collect-only -m "not slow" "${TESTS[@]}"
    step "bench_conv.py" 60 "$PYTHON" benchmarks/bench_conv.py --steps 2 --repeats 1 \
        --models mnist1d_cnn
    step "bench_fit.py" 60 "$PYTHON" benchmarks/bench_fit.py --steps 40 --repeats 1 \
        --models logistic
    step "bench_fit_many.py" 60 "$PYTHON" benchmarks/bench_fit_many.py --n-models 3 --steps 40 \
        --sequential-members 1
    step "bench_peers.py (jax peers)" 60 "$PYTHON" benchmarks/bench_peers.py --quick \
        --workloads logistic --peers jaxlearn "jax one-scan floor"
else
    # -n 0: one process (worker processes would each reserve the accelerator's memory).
    step "tests on the device" 120 "$PYTHON" -m pytest -q -p no:cacheprovider -rfE -n 0 \
        -m "not slow" "${TESTS[@]}"
    step "bench_conv.py" 40 "$PYTHON" benchmarks/bench_conv.py
    step "bench_fit.py" 60 "$PYTHON" benchmarks/bench_fit.py --repeats 2
    step "bench_fit_many.py --n-models 1000" 60 "$PYTHON" benchmarks/bench_fit_many.py \
        --n-models 1000 --sequential-members 4
    step "bench_peers.py (jax peers)" 60 "$PYTHON" benchmarks/bench_peers.py --repeats 1 \
        --workloads mlp cnn big_mlp \
        --peers jaxlearn "jax one-scan floor" "jax.jit per step" "flax nnx per step"
fi

{
    echo
    echo "## Summary"
    echo
    echo "total: $(( $(date +%s) - START )) s of the ${TOTAL} s budget"
    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "every step ok"
    else
        printf -- '- %s\n' "${FAILED[@]}"
    fi
} >> "$RESULTS"
echo "wrote $RESULTS" >&2
[ "${#FAILED[@]}" -eq 0 ]
