#!/usr/bin/env bash
# The GPU check: four steps on one NVIDIA GPU, within 8 minutes, then one table.
#
#   bash benchmarks/gpu_check.sh [--data PATH] [--dry-run]
#
# From the repository root, with xraybench's virtual environment active (. .venv/bin/activate):
#   1. tests      the CUDA tests: python -m pytest tests -k cuda (the CUDA code paths, tested with faked
#                 capability and out-of-memory errors; none is skipped without a GPU)
#   2. throughput python benchmarks/gpu_throughput.py: ResNet-50 training at 224 px, xraybench's engine
#                 against a plain loop, and against the anchor of about 2,500 img/s on one A100
#   3. hw3        xraybench run 'hw3*' --profile full --seeds 1 --device cuda: the HW3 suite as declared
#   4. published  xraybench run published-v2-resnet18-28 --profile full --seeds 1 --precision fp32 on a
#                 local PneumoniaMNIST 28 px .npz (the GPU machine has no network: no pneumoniamnist@28)
#
# Each step runs under `timeout` (its own limit, and never past the total budget) and writes its log
# under reports/gpu-check/<UTC time>/ (git-ignored), where the runs' results.json go too. A step that
# fails or runs out of time is FAIL or TIMEOUT in the table, and the check goes on; the exit status is 1
# when any step did not pass. Without a CUDA device it stops at once, one line, exit 2. --dry-run prints
# the commands and their time limits and exits 0 (no GPU needed).
#
# Settings (environment):
#   GPU_CHECK_DATA                step 4's .npz (--data wins; default tests/fixtures/pneumoniamnist-28-subset.npz)
#   GPU_CHECK_TIMEOUT_TESTS       step 1's limit in seconds (default 60)
#   GPU_CHECK_TIMEOUT_THROUGHPUT  step 2's (default 90)
#   GPU_CHECK_TIMEOUT_HW3         step 3's (default 150)
#   GPU_CHECK_TIMEOUT_PUBLISHED   step 4's (default 150)
#   GPU_CHECK_TOTAL               the whole check's budget in seconds (default 470: under 8 minutes)
#   GPU_CHECK_OUT                 where the logs go (default reports/gpu-check)

set -u -o pipefail

CALLED_FROM="$PWD"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

ANCHOR=2500        # img/s: ResNet-50, 224 px, AMP training, one A100 (NVIDIA DeepLearningExamples)
KILL_AFTER=5       # seconds between timeout's SIGTERM and its SIGKILL
RESERVE=5          # seconds kept at the end of the budget for the table
FIXTURE=tests/fixtures/pneumoniamnist-28-subset.npz

die() {
    echo "gpu_check: error: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

dry_run=0
data_arg=""
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --data)
            (($# >= 2)) || die "--data needs a path"
            data_arg="$2"
            shift
            ;;
        --data=*) data_arg="${1#--data=}" ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (bash benchmarks/gpu_check.sh --help)" ;;
    esac
    shift
done

seconds_setting() { # NAME DEFAULT: a whole number of seconds from the environment
    local value="${!1:-$2}"
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "$1=$value: a whole number of seconds, at least 1"
    echo "$value"
}
T_TESTS=$(seconds_setting GPU_CHECK_TIMEOUT_TESTS 60) || exit 2
T_THROUGHPUT=$(seconds_setting GPU_CHECK_TIMEOUT_THROUGHPUT 90) || exit 2
T_HW3=$(seconds_setting GPU_CHECK_TIMEOUT_HW3 150) || exit 2
T_PUBLISHED=$(seconds_setting GPU_CHECK_TIMEOUT_PUBLISHED 150) || exit 2
TOTAL=$(seconds_setting GPU_CHECK_TOTAL 470) || exit 2

# Step 4's data: --data, else GPU_CHECK_DATA, else the tests' PneumoniaMNIST 28 px file (train: a 3,882-image
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

# The steps: key, time limit, what (the table's column), command.
KEYS=(tests throughput hw3 published)
LIMITS=("$T_TESTS" "$T_THROUGHPUT" "$T_HW3" "$T_PUBLISHED")
WHAT=(
    "CUDA tests (pytest -k cuda)"
    "ResNet-50 224 px training img/s"
    "HW3 suite, full profile, 1 seed"
    "published-v2-resnet18-28, full, 1 seed, fp32"
)
set_command() { # KEY: that step's command, into the array CMD
    case "$1" in
        tests) CMD=(python -m pytest tests -q -k cuda -p no:cacheprovider) ;;
        throughput) CMD=(python benchmarks/gpu_throughput.py --device cuda --batches 64 128 256 --steps 30) ;;
        hw3)
            CMD=(xraybench run 'hw3*' --profile full --seeds 1 --device cuda --offline --no-report
                --out "$RUNS" --run-id hw3-full)
            ;;
        published)
            CMD=(xraybench run published-v2-resnet18-28 --data "$DATA" --profile full --seeds 1 --precision fp32
                --device cuda --offline --no-report --out "$RUNS" --run-id published-v2-resnet18-28-full)
            ;;
    esac
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
    echo "gpu_check --dry-run: the commands a run starts, from $ROOT, each under timeout -k ${KILL_AFTER}s"
    echo "total budget ${TOTAL}s; logs and runs under $OUT/"
    for i in "${!KEYS[@]}"; do
        set_command "${KEYS[$i]}"
        printf '%d  %-10s  timeout %-5s %s\n' $((i + 1)) "${KEYS[$i]}" "${LIMITS[$i]}s" "$(quoted "${CMD[@]}")"
    done
    note=""
    [[ -f "$DATA" ]] || note=", not found here"
    echo "step 4's data: $DATA ($DATA_FROM$note)"
    exit 0
fi

# --- A CUDA device, or stop: one line, exit 2 ------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 ||
    die "no CUDA device: nvidia-smi is not on PATH (this check needs an NVIDIA GPU; --dry-run lists its steps)"
if ! SMI="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1)"; then
    die "no CUDA device: nvidia-smi failed: $(head -n 1 <<<"$SMI")"
fi
command -v python >/dev/null 2>&1 || die "python is not on PATH: activate xraybench's environment (. .venv/bin/activate)"
if ! TORCH="$(python - 2>&1 <<'PY'
import os
import sys

try:
    import torch
except Exception as exc:
    sys.exit(f"torch does not import ({type(exc).__name__}: {exc})")
if not torch.cuda.is_available():
    sys.exit(
        f"torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    )
name = torch.cuda.get_device_name(0)
major, minor = torch.cuda.get_device_capability(0)
print(
    f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
    f"{torch.cuda.device_count()} device(s), cuda:0 {name} (compute capability {major}.{minor})"
)
PY
)"; then
    die "no CUDA device: $(tail -n 1 <<<"$TORCH")"
fi
command -v xraybench >/dev/null 2>&1 ||
    die "xraybench is not on PATH: activate xraybench's environment (. .venv/bin/activate)"

mkdir -p "$OUT" || die "cannot create $OUT"
export PYTHONUNBUFFERED=1 # the logs fill as the steps go: tail -f them

now() { date +%s.%N; }
START=$(now)
elapsed() { awk -v a="$START" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }

{
    echo "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $ROOT (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "\$ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv"
    echo "$SMI"
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


def say(result: str, ok: bool) -> None:
    print(f"{result}\t{'ok' if ok else 'bad'}")
    sys.exit()


def pct(x):
    return f"{100 * x:.1f}%"


if mode == "tests":
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected|errors?)", line)]
    if not lines:
        say("no pytest summary line in the log", False)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", lines[-1])}
    errors = counts.get("error", 0) + counts.get("errors", 0)
    result = f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped"
    if errors:
        result += f", {errors} error(s)"
    say(result, counts.get("passed", 0) > 0 and not counts.get("failed") and not errors)

if mode == "throughput":
    anchor = float(rest[0])
    rows = [  # batch, xraybench img/s, plain loop img/s, xraybench / plain (the script's own ratio)
        (int(b), float(ours.replace(",", "")), float(plain.replace(",", "")), float(ratio))
        for b, ours, plain, ratio in re.findall(r"^\s*(\d+)\s+([\d,.]+)\s+([\d,.]+)\s+([\d.]+)\s*$", text, re.M)
    ]
    if not rows:
        say("no img/s table in the log", False)
    precision = re.search(r"channels_last, (\w+) \(", text)
    b, ours, plain, ratio = max(rows, key=lambda r: r[1])
    each = ", ".join(f"b{r[0]} {r[1]:,.0f}" for r in rows)
    say(
        f"{ours:,.0f} img/s at batch {b}{' ' + precision[1] if precision else ''}: {ours / anchor:.2f}x the A100 "
        f"anchor ({anchor:,.0f}), {ratio:.2f}x the plain loop ({plain:,.0f}); all: {each}",
        True,
    )

# hw3 | published: the run's results.json
path = Path(rest[0])
planned = re.search(r"(\d+) trainings", text)
planned = int(planned[1]) if planned else None
if not path.exists():
    say(f"no results.json: no training finished{f' (of {planned})' if planned else ''}", False)
run = json.loads(path.read_text())
rows = run.get("cases", [])
ok = [r for r in rows if r.get("status") == "ok"]
others = "; ".join(f"{r['id']} {r.get('status')}: {(r.get('reason') or '')[:60]}" for r in rows if r not in ok)
precision = (run.get("settings") or {}).get("precision", {}).get("name", "?")
done = len(ok) == len(rows) == (planned or len(rows)) and rows
count = f"{len(ok)}/{planned or len(rows)} ok"

if mode == "hw3":
    accs = [r["metrics"]["test_acc"] for r in ok if r["metrics"].get("test_acc") is not None]
    result = count
    if accs:
        result += f", test acc mean {pct(sum(accs) / len(accs))} (cases {pct(min(accs))} to {pct(max(accs))})"
    result += f", {precision}"
    say(result + (f"; {others}" if others else ""), bool(done))

if mode == "published":
    data_path, data_from = rest[1:3]
    medmnist = (run.get("data") or {}).get("medmnist") or {}
    own = "MedMNIST's own file" if medmnist.get("official") else "not MedMNIST's own file: no verdict"
    where = f"data {data_path} ({data_from}; md5 {str(medmnist.get('md5', '?'))[:8]}; {own})"
    if not ok:
        say(f"{count}; {others}; {where}", False)
    m = ok[0]["metrics"]
    say(
        f"{m.get('epochs_run')} epochs run (best {m.get('best_epoch')}), test acc {pct(m['test_acc'])}, "
        f"AUC {m['test_auc']:.3f}, {precision}; {where}",
        bool(done),
    )
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
    set_command "$key"
    left=$((TOTAL - $(elapsed) - KILL_AFTER - RESERVE))
    if ((left < 5)); then
        RESULTS+=("not started: the ${TOTAL}s budget is spent (GPU_CHECK_TOTAL)") SECS+=(0) STATUS+=(SKIP)
        failed=1
        continue
    fi
    limit="${LIMITS[$i]}"
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
    case "$key" in
        tests) line=$(summary tests "$log") ;;
        throughput) line=$(summary throughput "$log" "$ANCHOR") ;;
        hw3) line=$(summary hw3 "$log" "$RUNS/hw3-full/results.json") ;;
        published)
            line=$(summary published "$log" "$RUNS/published-v2-resnet18-28-full/results.json" "$DATA" "$DATA_FROM")
            ;;
    esac
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
