#!/usr/bin/env bash
# The GPU check: ten steps on one NVIDIA GPU, within 8 minutes, then one table; without one, a CPU dry run.
#
#   bash benchmarks/gpu_check.sh [--data PATH] [--device auto|cuda|cpu] [--dry-run]
#
# From the repository root, with xraybench's virtual environment active (. .venv/bin/activate):
#   1. versions    python benchmarks/gpu_steps.py versions: torch, CUDA, cuDNN, the GPU, what --precision auto picks
#                  there, the TF32 settings a run gets
#   2. tests       the CUDA tests: python -m pytest tests -k cuda (the CUDA code paths, tested with faked
#                  capability and out-of-memory errors, and one test that needs a real GPU)
#   3. layout      python benchmarks/gpu_steps.py layout: the HW3 CNN, ResNet-18, EfficientNet-B0 and ConvNeXt-S in
#                  fp32, bf16 and fp16 (64 px, random init): after one training step, every parameter, gradient and
#                  Adam moment as CUDA's fused Adam demands; every host sync of a 20-step epoch and an evaluation
#                  pass under torch.cuda.set_sync_debug_mode("warn"), by source line
#   4. kernel      python benchmarks/gpu_steps.py kernel: the HW3 CNN's training step at 64 and 256 px, batch 32, GPU
#                  kernel time (torch.profiler) against wall time, one seed and 5 seeds stacked (seed batching)
#   5. smoke-bf16  xraybench run 'hw3*' --profile smoke --seeds 3 --device cuda --precision bf16 (each case's 3
#                  seeds in one pass: --seed-batching auto on CUDA)
#   6. smoke-fp16  the same with 1 seed in fp16 (loss scaling)
#   7. smoke-det   the same in fp32 with --deterministic
#   8. throughput  python benchmarks/gpu_throughput.py: ResNet-50 training at 224 px, xraybench's engine against a
#                  plain loop, and against the anchor of about 2,500 img/s on one A100
#   9. hw3         xraybench run 'hw3*' --profile full --seeds 1 --device cuda: the HW3 suite as declared
#  10. published   xraybench run published-v2-resnet18-28 --profile full --seeds 1 --precision fp32 on a local
#                  PneumoniaMNIST 28 px .npz (the GPU machine has no network: no pneumoniamnist@28)
# The rows of the xraybench runs (5-7, 9, 10) also say their peak memory: allocated against reserved.
#
# Each step runs under `timeout` (its own limit, and never past the total budget) and writes its log under
# reports/gpu-check/<UTC time>/ (git-ignored), where the runs' results.json go too. A step that fails or runs out
# of time is FAIL or TIMEOUT in the table, and the check goes on; the exit status is 1 when any step did not pass.
#
# Without a CUDA device (--device auto, the default: no nvidia-smi, or torch cannot use the GPU), or with
# --device cpu, it is a CPU dry run: the header says in one line why there is no GPU; versions, layout (the HW3
# CNN in fp32) and smoke-det run on the CPU, in under a minute (each under a limit of at least 60 s); every other
# step is SKIP, "needs a CUDA device"; then the table, and exit 0 when what ran passed. --device cuda stops
# without a CUDA device instead (one line, exit 2). --dry-run prints the commands a GPU run starts and their time
# limits (with --device cpu, the CPU run's) and exits 0, running nothing.
#
# Settings (environment): each step's time limit in seconds, the whole under 8 minutes with the table:
#   GPU_CHECK_TIMEOUT_VERSIONS    15     GPU_CHECK_TIMEOUT_SMOKE       25 (each of steps 5-7)
#   GPU_CHECK_TIMEOUT_TESTS       45     GPU_CHECK_TIMEOUT_THROUGHPUT  60
#   GPU_CHECK_TIMEOUT_LAYOUT      60     GPU_CHECK_TIMEOUT_HW3         85
#   GPU_CHECK_TIMEOUT_KERNEL      40     GPU_CHECK_TIMEOUT_PUBLISHED   70
#   GPU_CHECK_TOTAL               the whole check's budget (default 470: under 8 minutes)
#   GPU_CHECK_DATA                step 10's .npz (--data wins; default tests/fixtures/pneumoniamnist-28-subset.npz)
#   GPU_CHECK_OUT                 where the logs go (default reports/gpu-check)

set -u -o pipefail

CALLED_FROM="$PWD"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

ANCHOR=2500        # img/s: ResNet-50, 224 px, AMP training, one A100 (NVIDIA DeepLearningExamples)
KILL_AFTER=5       # seconds between timeout's SIGTERM and its SIGKILL
RESERVE=5          # seconds kept at the end of the budget for the table
CPU_FLOOR=60       # the least time limit of a step in the CPU dry run: a CPU is slower, and not what is timed
FIXTURE=tests/fixtures/pneumoniamnist-28-subset.npz
NEEDS_CUDA="needs a CUDA device"

die() {
    echo "gpu_check: error: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

dry_run=0
device=auto
data_arg=""
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --data)
            (($# >= 2)) || die "--data needs a path"
            data_arg="$2"
            shift
            ;;
        --device)
            (($# >= 2)) || die "--device needs auto, cuda or cpu"
            device="$2"
            shift
            ;;
        --data=*) data_arg="${1#--data=}" ;;
        --device=*) device="${1#--device=}" ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (bash benchmarks/gpu_check.sh --help)" ;;
    esac
    shift
done
[[ "$device" =~ ^(auto|cuda|cpu)$ ]] || die "--device $device: expected auto, cuda or cpu"

seconds_setting() { # NAME DEFAULT: a whole number of seconds from the environment
    local value="${!1:-$2}"
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "$1=$value: a whole number of seconds, at least 1"
    echo "$value"
}
T_VERSIONS=$(seconds_setting GPU_CHECK_TIMEOUT_VERSIONS 15) || exit 2
T_TESTS=$(seconds_setting GPU_CHECK_TIMEOUT_TESTS 45) || exit 2
T_LAYOUT=$(seconds_setting GPU_CHECK_TIMEOUT_LAYOUT 60) || exit 2
T_KERNEL=$(seconds_setting GPU_CHECK_TIMEOUT_KERNEL 40) || exit 2
T_SMOKE=$(seconds_setting GPU_CHECK_TIMEOUT_SMOKE 25) || exit 2
T_THROUGHPUT=$(seconds_setting GPU_CHECK_TIMEOUT_THROUGHPUT 60) || exit 2
T_HW3=$(seconds_setting GPU_CHECK_TIMEOUT_HW3 85) || exit 2
T_PUBLISHED=$(seconds_setting GPU_CHECK_TIMEOUT_PUBLISHED 70) || exit 2
TOTAL=$(seconds_setting GPU_CHECK_TOTAL 470) || exit 2

# Step 10's data: --data, else GPU_CHECK_DATA, else the tests' PneumoniaMNIST 28 px file (train: a 3,882-image
# subset; val and test: the standard 524 and 624). Said in the table.
if [[ -n "$data_arg" ]]; then
    DATA="$data_arg" DATA_FROM="--data"
    [[ "$DATA" == /* || "$CALLED_FROM" == "$ROOT" ]] || DATA="$CALLED_FROM/$DATA" # as given, from where it was
elif [[ -n "${GPU_CHECK_DATA:-}" ]]; then
    DATA="$GPU_CHECK_DATA" DATA_FROM="GPU_CHECK_DATA"
else
    DATA="$FIXTURE" DATA_FROM="default"
fi

STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT="${GPU_CHECK_OUT:-reports/gpu-check}/$STAMP"
RUNS="$OUT/runs"

# The steps: key, time limit, what (the table's column); their commands in set_step.
KEYS=(versions tests layout kernel smoke-bf16 smoke-fp16 smoke-det throughput hw3 published)
LIMITS=("$T_VERSIONS" "$T_TESTS" "$T_LAYOUT" "$T_KERNEL" "$T_SMOKE" "$T_SMOKE" "$T_SMOKE" "$T_THROUGHPUT" "$T_HW3"
    "$T_PUBLISHED")
WHAT=(
    "versions, auto's precision, TF32"
    "CUDA tests (pytest -k cuda)"
    "fused Adam layout after a step; host syncs of an epoch"
    "HW3 CNN step: GPU kernel vs wall time"
    "CLI smoke, HW3, bf16, 3 seeds in one pass"
    "CLI smoke, HW3, fp16"
    "CLI smoke, HW3, fp32 --deterministic"
    "ResNet-50 224 px training img/s"
    "HW3 suite, full profile, 1 seed"
    "published-v2-resnet18-28, full, 1 seed, fp32"
)
SMOKE=(xraybench run 'hw3*' --profile smoke --offline --no-report --out "$RUNS")

set_step() { # KEY ON: the step's command on ON (cuda | cpu) into CMD, empty where it needs CUDA; its reader into READ
    local key="$1"
    case "$key" in
        versions) CMD=(python benchmarks/gpu_steps.py versions --device cuda) READ=(steps) ;;
        tests) CMD=(python -m pytest tests -q -k cuda -p no:cacheprovider) READ=(tests) ;;
        layout) CMD=(python benchmarks/gpu_steps.py layout --device cuda) READ=(steps) ;;
        kernel) CMD=(python benchmarks/gpu_steps.py kernel --device cuda) READ=(steps) ;;
        smoke-bf16 | smoke-fp16)
            CMD=("${SMOKE[@]}" --seeds "$([[ $key == smoke-bf16 ]] && echo 3 || echo 1)" --device cuda
                --precision "${key#smoke-}" --run-id "$key")
            READ=(run "$RUNS/$key/results.json")
            ;;
        smoke-det)
            CMD=("${SMOKE[@]}" --seeds 1 --device cuda --precision fp32 --deterministic --run-id "$key")
            READ=(run "$RUNS/$key/results.json")
            ;;
        throughput)
            CMD=(python benchmarks/gpu_throughput.py --device cuda --batches 128 256 --steps 20)
            READ=(throughput "$ANCHOR")
            ;;
        hw3)
            CMD=(xraybench run 'hw3*' --profile full --seeds 1 --device cuda --offline --no-report
                --out "$RUNS" --run-id hw3-full)
            READ=(hw3 "$RUNS/hw3-full/results.json")
            ;;
        published)
            CMD=(xraybench run published-v2-resnet18-28 --data "$DATA" --profile full --seeds 1 --precision fp32
                --device cuda --offline --no-report --out "$RUNS" --run-id published-v2-resnet18-28-full)
            READ=(published "$RUNS/published-v2-resnet18-28-full/results.json" "$DATA" "$DATA_FROM")
            ;;
    esac
    [[ "$2" == cuda ]] && return
    case "$key" in # the CPU dry run: what runs on a CPU in seconds, where it checks something
        versions) CMD=(python benchmarks/gpu_steps.py versions --device cpu) ;;
        layout) CMD=(python benchmarks/gpu_steps.py layout --device cpu --models hw3_cnn --precisions fp32 --steps 2) ;;
        smoke-det) CMD=("${SMOKE[@]}" --seeds 1 --device cpu --precision fp32 --deterministic --run-id "$key") ;;
        *) CMD=() ;;
    esac
}

step_limit() { # I ON: step I's time limit on ON (cuda | cpu)
    local limit="${LIMITS[$1]}"
    [[ "$2" == cpu ]] && ((limit < CPU_FLOOR)) && limit=$CPU_FLOOR
    echo "$limit"
}

quoted() { # the arguments as one shell-readable line
    local arg line=""
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./=@:,+-]+$ ]]; then
            line+=" $arg"
        else
            line+=" ${arg@Q}"
        fi
    done
    echo "${line# }"
}

if ((dry_run)); then
    on=cuda
    [[ "$device" == cpu ]] && on=cpu
    echo "gpu_check --dry-run: the commands a run on $([[ $on == cuda ]] && echo 'a GPU' || echo 'the CPU') starts," \
        "from $ROOT, each under timeout -k ${KILL_AFTER}s"
    echo "total budget ${TOTAL}s; logs and runs under $OUT/"
    for i in "${!KEYS[@]}"; do
        set_step "${KEYS[$i]}" "$on"
        if ((${#CMD[@]})); then
            printf '%-2d  %-10s  timeout %-5s %s\n' $((i + 1)) "${KEYS[$i]}" "$(step_limit "$i" "$on")s" \
                "$(quoted "${CMD[@]}")"
        else
            printf '%-2d  %-10s  SKIP           %s\n' $((i + 1)) "${KEYS[$i]}" "$NEEDS_CUDA"
        fi
    done
    note=""
    [[ -f "$DATA" ]] || note=", not found here"
    echo "step 10's data: $DATA ($DATA_FROM$note)"
    exit 0
fi

# --- A CUDA device, or a CPU dry run (--device cuda: or stop, one line, exit 2) -----------------------------------
command -v python >/dev/null 2>&1 || die "python is not on PATH: activate xraybench's environment (. .venv/bin/activate)"
command -v xraybench >/dev/null 2>&1 ||
    die "xraybench is not on PATH: activate xraybench's environment (. .venv/bin/activate)"
read -r -d '' TORCH_PY <<'PY'
import os
import sys

try:
    import torch
except Exception as exc:
    print(f"torch does not import ({type(exc).__name__}: {exc})")
    sys.exit(1)
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
if sys.argv[1] == "cpu":
    sys.exit(3)
if not torch.cuda.is_available():
    print(
        f"torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    )
    sys.exit(3)
name = torch.cuda.get_device_name(0)
major, minor = torch.cuda.get_device_capability(0)
print(
    f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
    f"{torch.cuda.device_count()} device(s), cuda:0 {name} (compute capability {major}.{minor})"
)
PY

no_cuda="" SMI=""
if [[ "$device" == cpu ]]; then
    no_cuda="--device cpu"
elif ! command -v nvidia-smi >/dev/null 2>&1; then
    no_cuda="nvidia-smi is not on PATH"
elif ! SMI="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1)"; then
    no_cuda="nvidia-smi failed: $(head -n 1 <<<"$SMI")" SMI=""
fi
TORCH="$(python -c "$TORCH_PY" "${no_cuda:+cpu}" 2>&1)"
case $? in
    0) ;;
    3) no_cuda="${no_cuda:-$(tail -n 1 <<<"$TORCH")}" TORCH="$(head -n 1 <<<"$TORCH")" ;;
    *) die "$(tail -n 1 <<<"$TORCH")" ;;
esac
[[ -z "$no_cuda" || "$device" != cuda ]] ||
    die "no CUDA device: $no_cuda (this check needs an NVIDIA GPU; without --device cuda it is a CPU dry run)"
ON=cuda
[[ -n "$no_cuda" ]] && ON=cpu

mkdir -p "$OUT" || die "cannot create $OUT"
export PYTHONUNBUFFERED=1 # the logs fill as the steps go: tail -f them

now() { date +%s.%N; }
START=$(now)
elapsed() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }

{
    echo "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $ROOT (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    if [[ "$ON" == cuda ]]; then
        echo "\$ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv"
        echo "$SMI"
    else
        echo "no CUDA device: $no_cuda; a CPU dry run: the steps that need CUDA are SKIP, the others run on the CPU"
    fi
    echo "$TORCH"
    echo "logs: $OUT/ (budget ${TOTAL}s)"
} | tee "$OUT/header.txt"

# --- Reading a step's outcome: one line "RESULT<TAB>ok|bad" -------------------------------------------------
read -r -d '' SUMMARY_PY <<'PY'
import json
import re
import sys
from pathlib import Path

mode, log, *rest = sys.argv[1:]
text = Path(log).read_text(errors="replace") if Path(log).exists() else ""


class Unread(Exception):
    """The step left nothing to read: why."""


def pct(x):
    return f"{100 * x:.1f}%"


def tests():
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected|errors?)", line)]
    if not lines:
        raise Unread("no pytest summary line in the log")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", lines[-1])}
    errors = counts.get("error", 0) + counts.get("errors", 0)
    result = f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped"
    if errors:
        result += f", {errors} error(s)"
    return result, counts.get("passed", 0) > 0 and not counts.get("failed") and not errors


def throughput(anchor):
    anchor = float(anchor)
    rows = [  # batch, xraybench img/s, plain loop img/s, xraybench / plain (the script's own ratio)
        (int(b), float(ours.replace(",", "")), float(plain.replace(",", "")), float(ratio))
        for b, ours, plain, ratio in re.findall(r"^\s*(\d+)\s+([\d,.]+)\s+([\d,.]+)\s+([\d.]+)\s*$", text, re.M)
    ]
    if not rows:
        raise Unread("no img/s table in the log")
    precision = re.search(r"channels_last, (\w+) \(", text)
    b, ours, plain, ratio = max(rows, key=lambda r: r[1])
    each = ", ".join(f"b{r[0]} {r[1]:,.0f}" for r in rows)
    return (
        f"{ours:,.0f} img/s at batch {b}{' ' + precision[1] if precision else ''}: {ours / anchor:.2f}x the A100 "
        f"anchor ({anchor:,.0f}), {ratio:.2f}x the plain loop ({plain:,.0f}); all: {each}",
        True,
    )


def steps():
    """benchmarks/gpu_steps.py's last line, "summary: ..."; its exit status says whether it passed."""
    found = [line.removeprefix("summary: ") for line in text.splitlines() if line.startswith("summary: ")]
    if not found:
        raise Unread("no summary line in the log")
    return found[-1], True


def read_run(path):
    """A run's results.json: the run, its rows, those ok, a note on the others, 'n/N ok' and whether all are."""
    planned = re.search(r"(\d+) trainings", text)
    planned = int(planned[1]) if planned else None
    if not Path(path).exists():
        raise Unread(f"no results.json: no training finished{f' (of {planned})' if planned else ''}")
    run = json.loads(Path(path).read_text())
    rows = run.get("cases", [])
    ok = [r for r in rows if r.get("status") == "ok"]
    others = "; ".join(f"{r['id']} {r.get('status')}: {(r.get('reason') or '')[:60]}" for r in rows if r not in ok)
    done = bool(rows) and len(ok) == len(rows) == (planned or len(rows))
    return run, ok, others, f"{len(ok)}/{planned or len(rows)} ok", done


def memory(ok):
    """The rows' highest peaks: what tensors held against what the CUDA allocator reserved (on a CPU: the RSS)."""
    metrics = [r["metrics"] for r in ok]
    allocated = [m["peak_memory_mb"] for m in metrics if m.get("peak_memory_mb") is not None]
    reserved = [m["peak_reserved_mb"] for m in metrics if m.get("peak_reserved_mb") is not None]
    if reserved:
        return f"peak memory {max(allocated):,.0f} MB allocated of {max(reserved):,.0f} MB reserved"
    return f"peak memory {max(allocated):,.0f} MB (process RSS)" if allocated else "no peak memory"


def settings(run):
    chosen = run.get("settings") or {}
    flags = [name for name in ("deterministic", "tf32") if chosen.get(name)]
    return ", ".join([chosen.get("precision", {}).get("name", "?"), *flags])


def smoke(path):
    run, ok, others, count, done = read_run(path)
    unsure = sum(any("deterministic" in w for w in r.get("warnings") or []) for r in ok)
    batched = sum(len(r["metrics"].get("seeds_batched") or ()) > 1 for r in ok)
    result = f"{count}, {settings(run)}; {memory(ok)}"
    result += f"; {batched} seed-batched" if batched else ""
    result += f"; {unsure} with nondeterministic ops" if unsure else ""
    return result + (f"; {others}" if others else ""), done


def hw3(path):
    run, ok, others, count, done = read_run(path)
    accs = [r["metrics"]["test_acc"] for r in ok if r["metrics"].get("test_acc") is not None]
    result = count
    if accs:
        result += f", test acc mean {pct(sum(accs) / len(accs))} (cases {pct(min(accs))} to {pct(max(accs))})"
    result += f", {settings(run)}; {memory(ok)}"
    return result + (f"; {others}" if others else ""), done


def published(path, data_path, data_from):
    run, ok, others, count, done = read_run(path)
    medmnist = (run.get("data") or {}).get("medmnist") or {}
    own = "MedMNIST's own file" if medmnist.get("official") else "not MedMNIST's own file: no verdict"
    where = f"data {data_path} ({data_from}; md5 {str(medmnist.get('md5', '?'))[:8]}; {own})"
    if not ok:
        return f"{count}; {others}; {where}", False
    m = ok[0]["metrics"]
    return (
        f"{m.get('epochs_run')} epochs run (best {m.get('best_epoch')}), test acc {pct(m['test_acc'])}, "
        f"AUC {m['test_auc']:.3f}, {settings(run)}; {memory(ok)}; {where}",
        done,
    )


READERS = {"tests": tests, "throughput": throughput, "steps": steps, "run": smoke, "hw3": hw3, "published": published}
try:
    result, passed = READERS[mode](*rest)
except Unread as why:
    result, passed = str(why), False
print(f"{result}\t{'ok' if passed else 'bad'}")
PY

summary() { # MODE LOG [ARGS...]: the result line of a step, or why there is none
    python -c "$SUMMARY_PY" "$@" 2>/dev/null || printf 'could not read the outcome (see the log)\tbad\n'
}

# --- The steps -----------------------------------------------------------------------------------------------
RESULTS=() SECS=() STATUS=()
failed=0

print_table() {
    local headers=(step what result seconds status) w=(4 4 6 7 6) i n=${#RESULTS[@]}
    for ((i = 0; i < n; i++)); do
        ((${#WHAT[$i]} > w[1])) && w[1]=${#WHAT[$i]}
        ((${#RESULTS[$i]} > w[2])) && w[2]=${#RESULTS[$i]}
    done
    local fmt="%-${w[0]}s | %-${w[1]}s | %-${w[2]}s | %${w[3]}s | %s\n"
    # shellcheck disable=SC2059 # the format is built from the column widths
    printf "$fmt" "${headers[@]}"
    printf '%s-+-%s-+-%s-+-%s-+-%s\n' "$(rule "${w[0]}")" "$(rule "${w[1]}")" "$(rule "${w[2]}")" \
        "$(rule "${w[3]}")" "$(rule "${w[4]}")"
    for ((i = 0; i < n; i++)); do
        # shellcheck disable=SC2059
        printf "$fmt" "$((i + 1))" "${WHAT[$i]}" "${RESULTS[$i]}" "${SECS[$i]}" "${STATUS[$i]}"
    done
}

rule() { printf '%*s' "$1" '' | tr ' ' '-'; }

finish() {
    echo
    print_table | tee "$OUT/summary.txt"
    echo "logs: $OUT/"
}

trap 'echo; echo "gpu_check: interrupted" >&2; finish; exit 130' INT TERM

for i in "${!KEYS[@]}"; do
    key="${KEYS[$i]}"
    n=$((i + 1))
    log="$OUT/$n-$key.log"
    set_step "$key" "$ON"
    if ((${#CMD[@]} == 0)); then # the CPU dry run
        RESULTS+=("$NEEDS_CUDA") SECS+=(0) STATUS+=(SKIP)
        echo "[$n/${#KEYS[@]}] $key: SKIP, $NEEDS_CUDA"
        continue
    fi
    left=$((TOTAL - $(elapsed) - KILL_AFTER - RESERVE))
    if ((left < 5)); then
        RESULTS+=("not started: the ${TOTAL}s budget is spent (GPU_CHECK_TOTAL)") SECS+=(0) STATUS+=(SKIP)
        failed=1
        continue
    fi
    limit=$(step_limit "$i" "$ON")
    ((left < limit)) && limit=$left
    if [[ "$key" == published && ! -f "$DATA" ]]; then
        RESULTS+=("data not found: $DATA ($DATA_FROM; --data PATH or GPU_CHECK_DATA)") SECS+=(0) STATUS+=(FAIL)
        failed=1
        continue
    fi
    echo "[$n/${#KEYS[@]}] $key: up to ${limit}s; tail -f $log"
    echo "\$ timeout -k ${KILL_AFTER}s ${limit}s $(quoted "${CMD[@]}")" >"$log"
    t0=$(now)
    timeout -k "${KILL_AFTER}s" "${limit}s" "${CMD[@]}" >>"$log" 2>&1 </dev/null
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    echo "exit status $rc after ${secs}s" >>"$log"
    line=$(summary "${READ[0]}" "$log" "${READ[@]:1}")
    result="${line%$'\t'*}" verdict="${line##*$'\t'}"
    if ((rc == 124 || rc == 137)); then
        status=TIMEOUT result="after ${limit}s: $result"
    elif ((rc != 0)); then
        status=FAIL result="exit $rc: $result"
    elif [[ "$verdict" != ok ]]; then
        status=FAIL
    else
        status=PASS
    fi
    [[ "$status" == PASS ]] || failed=1
    RESULTS+=("$result") SECS+=("$secs") STATUS+=("$status")
    echo "[$n/${#KEYS[@]}] $key: $status in ${secs}s"
done

trap - INT TERM
finish
exit "$failed"
