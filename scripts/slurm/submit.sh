#!/usr/bin/env bash
# Submits a batch-hpo study to SLURM with the resources `python -m hpo.estimate` says it needs:
# it runs the estimate for the study (as the job runs it: --cluster), then
#   sbatch --nodes=N --time=T --mem=M --gres=G ... scripts/slurm/hpo.sbatch <hpo.run options>
# with --mem and --gres per node. Options on the sbatch command line win over the #SBATCH
# defaults in hpo.sbatch.
#
#   scripts/slurm/submit.sh [submit options] --space NAME [hpo.run options]
#   scripts/slurm/submit.sh --dry-run --gpus 8 --gpus-per-node 4 --space kd --num-samples 40 \
#       --max-concurrent 16 --gpus-per-trial 0.5
#
# Submit options may come anywhere; `--` ends them. Everything else goes to hpo.run, and
# hpo.estimate gets the options it shares with hpo.run (the study, its data) and the submit
# options --gpus, --gpus-per-node and --gpu-memory. hpo.estimate --json prints one JSON object
# per dataset, each with "slurm": {"time", "nodes", "mem", "gres"}; over several, the longest
# time, the most nodes, the most memory and the most GPUs win.
#
# Environment: SPACE (the space, when --space is not given); HPO_PYTHON (the interpreter with
# this project installed; default: this repository's .venv/bin/python when it exists, else
# python); sbatch's own input variables (SBATCH_ACCOUNT, SBATCH_PARTITION, ...).

set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/slurm/submit.sh [submit options] --space NAME [hpo.run options]

Runs `python -m hpo.estimate --json` for the study, then submits scripts/slurm/hpo.sbatch with
sbatch --time, --mem and --gres from the estimate and the hpo.run options passed through.

submit options:
  --dry-run            print the sbatch command instead of running it
  --gpus N             GPUs of the job, all nodes together (hpo.estimate --gpus; 1)
  --gpus-per-node N    GPUs of one node (hpo.estimate --gpus-per-node; default --gpus):
                       the job gets --gpus / N nodes
  --gpu-memory SIZE    memory of one GPU, e.g. 80GiB (hpo.estimate --gpu-memory)
  --sbatch OPTION      one more sbatch option, e.g. --sbatch --partition=gpu (repeatable)
  -h, --help           this text
USAGE
}

log() { echo "submit.sh: $*" >&2; }

# A user mistake: the usage, what is wrong, exit code 2.
fail_usage() {
  usage >&2
  log "$*"
  exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/../.." && pwd)
if [[ -z ${HPO_PYTHON:-} ]]; then
  if [[ -x $root/.venv/bin/python ]]; then
    HPO_PYTHON=$root/.venv/bin/python
  else
    HPO_PYTHON=python
  fi
fi

# `${a[@]+"${a[@]}"}` below expands an empty array under `set -u` on bash < 4.4 too.
is_dry_run=false
estimate_opts=()
sbatch_opts=()
run_args=()
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --dry-run) is_dry_run=true ;;
    --gpus | --gpus-per-node | --gpu-memory | --sbatch)
      if (($# < 2)); then
        fail_usage "$1 needs a value"
      fi
      if [[ $1 == --sbatch ]]; then
        sbatch_opts+=("$2")
      else
        estimate_opts+=("$1" "$2")
      fi
      shift
      ;;
    --sbatch=*) sbatch_opts+=("${1#*=}") ;;
    --gpus=* | --gpus-per-node=* | --gpu-memory=*) estimate_opts+=("$1") ;;
    --)
      shift
      run_args+=("$@")
      break
      ;;
    *) run_args+=("$1") ;;
  esac
  shift
done

# What hpo.estimate shares with hpo.run, in either spelling (--opt VALUE, --opt=VALUE): the
# study (its space's --set changes, its trials, their resources and budget, its seed) and its
# data.
shared='space|set|num-samples|max-concurrent|epochs|memory-budget|cpus-per-trial|gpus-per-trial'
shared+='|seed|data-dir|dataset|window|stride|num-messages|data-seed|on-bad-rows|cache-dir'
estimate_args=()
has_space=false
i=0
while ((i < ${#run_args[@]})); do
  arg=${run_args[i]}
  if [[ $arg =~ ^--($shared)$ ]]; then
    if ((i + 1 == ${#run_args[@]})); then
      fail_usage "$arg needs a value"
    fi
    estimate_args+=("$arg" "${run_args[i + 1]}")
    i=$((i + 1))
  elif [[ $arg =~ ^--($shared)= || $arg == --smoke-test || $arg == --no-cache ]]; then
    estimate_args+=("$arg")
  fi # else an option only hpo.run takes
  if [[ $arg == --space || $arg == --space=* ]]; then
    has_space=true
  fi
  i=$((i + 1))
done
if ! $has_space; then
  if [[ -z ${SPACE:-} ]]; then
    fail_usage "no search space: pass --space NAME or set SPACE"
  fi
  run_args=(--space "$SPACE" ${run_args[@]+"${run_args[@]}"})
  estimate_args=(--space "$SPACE" ${estimate_args[@]+"${estimate_args[@]}"})
fi

# --cluster: the job's study joins the Ray cluster hpo.sbatch starts (hpo.run --address auto).
if ! estimate=$("$HPO_PYTHON" -m hpo.estimate "${estimate_args[@]}" \
  ${estimate_opts[@]+"${estimate_opts[@]}"} --cluster --json); then
  log "python -m hpo.estimate failed (its message is above); nothing was submitted"
  exit 1
fi

# One line each: time, nodes, mem, gres. Python's json, so jq is not needed.
read_slurm='
import json
import re
import sys

TIME = re.compile(r"(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)")  # [D-]HH:MM:SS
MEM = re.compile(r"(\d+(?:\.\d+)?)([KMGT]?)")  # SLURM sizes; no suffix: MB
GRES = re.compile(r"gpu(?::[\w.-]+)?:(\d+)")  # gpu:N or gpu:TYPE:N, per node
NODES = re.compile(r"[1-9]\d*")
MIB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}

rows = []
for number, line in enumerate(sys.stdin.read().splitlines(), start=1):
    if not line.strip():
        continue
    try:
        slurm = json.loads(line)["slurm"]
        time, mem, gres = str(slurm["time"]), str(slurm["mem"]), str(slurm["gres"])
        nodes = str(slurm["nodes"])
    except (ValueError, KeyError, TypeError) as error:
        sys.exit(f"submit.sh: hpo.estimate --json line {number}: no slurm time/nodes/mem/gres"
                 f" ({type(error).__name__}: {error}): {line[:200]}")
    t, m, g = TIME.fullmatch(time), MEM.fullmatch(mem), GRES.fullmatch(gres)
    if not (t and m and g and NODES.fullmatch(nodes)):
        sys.exit(f"submit.sh: hpo.estimate --json line {number}: expected time HH:MM:SS,"
                 f" nodes <n>, mem <n>G, gres gpu:<n>; got {time=}, {nodes=}, {mem=}, {gres=}")
    days, hours, minutes, seconds = (int(part or 0) for part in t.groups())
    rows.append({
        "time": (((days * 24 + hours) * 60 + minutes) * 60 + seconds, time),
        "nodes": (int(nodes), nodes),
        "mem": (float(m[1]) * MIB[m[2]], mem),
        "gres": (int(g[1]), gres),
    })
if not rows:
    sys.exit("submit.sh: hpo.estimate --json printed no estimate")
for key in ("time", "nodes", "mem", "gres"):
    print(max(row[key] for row in rows)[1])
'
slurm_values=$("$HPO_PYTHON" -c "$read_slurm" <<<"$estimate")
{
  read -r time
  read -r num_nodes
  read -r mem
  read -r gres
} <<<"$slurm_values"
log "estimate: --time=$time, $num_nodes node(s), per node --mem=$mem --gres=$gres"

# HPO_ROOT tells the job where this repository (and its .venv) is; the job itself runs in the
# submit directory, where relative paths in the hpo.run options point.
# shellcheck disable=SC2054 # the comma belongs to sbatch's --export syntax
cmd=(sbatch --nodes="$num_nodes" --time="$time" --mem="$mem" --gres="$gres"
  --export=ALL,HPO_ROOT="$root" ${sbatch_opts[@]+"${sbatch_opts[@]}"}
  "$script_dir/hpo.sbatch" "${run_args[@]}")
if $is_dry_run; then
  # Shell-quoted: the line runs as printed.
  printf '%q' "${cmd[0]}"
  printf ' %q' "${cmd[@]:1}"
  printf '\n'
  exit 0
fi
if ! command -v sbatch >/dev/null; then
  log "sbatch not found: run this on a SLURM login node (or see the command with --dry-run)"
  exit 1
fi
exec "${cmd[@]}"
