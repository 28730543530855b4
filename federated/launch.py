"""Start Flower's own processes on loopback for a run and stop them by PID: a SuperLink in simulation mode
(`glassmate fl sim`), or a SuperLink plus N SuperNodes (`glassmate fl deploy`), then `flwr run` of this repository's
app. Everything lives under one folder (FLWR_HOME, databases, logs) so runs never touch ~/.flwr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from device.paths import REPO_ROOT


class LaunchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"{proc.args[0]} exited with code {proc.returncode}; see {log}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise LaunchError(f"{proc.args[0]} did not open port {port} within {timeout:.0f} s; see {log}")


def tool(name: str) -> str:
    """A Flower executable from this interpreter's environment (the venv's bin/), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise LaunchError(f"`{name}` is not installed: install glassmate's training extra (make test does)")
    return found


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Federation:
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, args: list[str], name: str, port: int | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen(args, env=env or self.env, stdout=handle, stderr=subprocess.STDOUT, cwd=self.folder,
                                start_new_session=True)
        handle.close()
        self.procs.append(proc)
        self.logs.append(log)
        if port is not None:
            wait_port(port, proc, log)
        return proc

    def stop(self) -> None:
        """SIGTERM each process group by PID, then SIGKILL what is left after 10 s — including the descendants
        Flower starts in sessions of their own (SuperExec, the simulation and its Ray workers)."""
        family = {d for p in self.procs for d in descendants(p.pid)}
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc: parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def base_env(folder: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update({
        "FLWR_HOME": str(folder / "flwr-home"),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        # the app's processes find the same catalog and model files as this command
        "GLASSMATE_CATALOG": str(Path(os.environ.get("GLASSMATE_CATALOG", REPO_ROOT / "models" / "catalog.toml"))),
        "PYTHONUNBUFFERED": "1",
        # Flower's processes start further Flower executables (flower-superexec, flwr-serverapp…) by name
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    })
    # Each run's simulated glasses keep their state (audit logs, private adapters) in the run folder; the model
    # files are the caller's own.
    from device.paths import models_dir

    home = folder / "devices"
    (home / "state").mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(models_dir().resolve())
    env["GLASSMATE_HOME"] = str(home)
    return env


def write_connection(env: dict[str, str], name: str, control_port: int, num_supernodes: int | None,
                     cpus_per_client: int = 1) -> None:
    home = Path(env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{name}"', "", f"[superlink.{name}]",
             f'address = "127.0.0.1:{control_port}"', "insecure = true"]
    if num_supernodes is not None:
        lines += [f"options.num-supernodes = {num_supernodes}",
                  f"options.backend.client-resources.num-cpus = {cpus_per_client}",
                  "options.backend.client-resources.num-gpus = 0"]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def flwr_run(fed: Federation, connection: str, run_config: dict, timeout: float | None = None) -> None:
    """`flwr run` of this repository's app, streamed to flwr-run.log; a LaunchError when it fails."""
    overrides = " ".join(f"{k}={toml_value(v)}" for k, v in run_config.items())
    args = [tool("flwr"), "run", str(REPO_ROOT), connection, "--run-config", overrides, "--stream"]
    log = fed.folder / "flwr-run.log"
    with log.open("ab") as handle:
        proc = subprocess.run(args, env=fed.env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout,
                              cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise LaunchError(f"flwr run exited with code {proc.returncode}; see {log}")


def superlink_args(http: int, folder: Path, simulation: bool) -> list[str]:
    args = [tool("flower-superlink"), "--insecure", "--isolation", "subprocess", "--host", "127.0.0.1", "--port",
            str(http), "--database", str(folder / "superlink.db"), "--disable-runtime-dependency-installation"]
    return args + (["--simulation"] if simulation else [])


def deployment(folder: Path, num_nodes: int, run_config: dict, timeout: float | None = None,
               kill_node_in_round: tuple[int, int] | None = None) -> Path:
    """A SuperLink and `num_nodes` SuperNodes on loopback, node i holding partition i; the run; all stopped by PID.

    `kill_node_in_round=(i, r)` kills SuperNode i (SIGKILL) as soon as round r - 1 is recorded in fl.json, that is
    while round r runs: the failure drill."""
    import threading

    folder.mkdir(parents=True, exist_ok=True)
    fed = Federation(folder, base_env(folder))
    http = free_port()
    try:
        fed.start(superlink_args(http, folder, simulation=False), "superlink", port=http)
        nodes = []
        for i in range(num_nodes):
            port = free_port()
            nodes.append(fed.start([tool("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{http}",
                                    "--host", "127.0.0.1", "--port", str(port), "--isolation", "subprocess",
                                    "--node-config", f"partition-id={i} num-partitions={num_nodes}"],
                                   f"supernode-{i}", port=port))  # SuperNodes install nothing unless allowed
        write_connection(fed.env, "glassmate-deploy", http, None)
        if kill_node_in_round is not None:
            index, rnd = kill_node_in_round
            victim = nodes[index]
            record = Path(str(run_config["out-dir"])) / "fl.json"

            def kill_when_due() -> None:
                while victim.poll() is None:
                    try:
                        done = [r["round"] for r in json.loads(record.read_text())["rounds"]]
                    except (OSError, ValueError, KeyError):
                        done = []
                    if rnd - 1 in done:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(victim.pid, signal.SIGKILL)
                        return
                    time.sleep(0.2)
            threading.Thread(target=kill_when_due, daemon=True).start()
        flwr_run(fed, "glassmate-deploy", run_config, timeout)
    finally:
        fed.stop()
    return folder


def simulation(folder: Path, num_supernodes: int, run_config: dict, cpus_per_client: int = 1,
               timeout: float | None = None) -> Path:
    """A SuperLink in simulation mode on loopback, the run, then the SuperLink stopped by PID."""
    folder.mkdir(parents=True, exist_ok=True)
    fed = Federation(folder, base_env(folder))
    http = free_port()  # Flower 1.42 serves the Control and Fleet APIs over this one HTTP port
    try:
        fed.start(superlink_args(http, folder, simulation=True), "superlink", port=http)
        write_connection(fed.env, "glassmate-sim", http, num_supernodes, cpus_per_client)
        flwr_run(fed, "glassmate-sim", run_config, timeout)
    finally:
        fed.stop()
    return folder


# -- over a network: TLS, and only registered glasses ---------------------------------------------------------------
def secure_superlink_args(http: int, folder: Path, creds) -> list[str]:
    """A SuperLink that speaks only TLS and admits only SuperNodes whose public key was registered."""
    args = superlink_args(http, folder, simulation=False)
    args.remove("--insecure")
    return args + ["--ssl-ca-certfile", str(creds.ca_cert), "--ssl-certfile", str(creds.cert),
                   "--ssl-keyfile", str(creds.key), "--enable-supernode-auth"]


def write_secure_connection(env: dict[str, str], name: str, address: str, ca_cert: Path) -> None:
    home = Path(env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\n'
                                      f'address = "{address}"\nroot-certificates = "{ca_cert}"\n')


def register_node(fed: Federation, connection: str, public_key: Path) -> None:
    """The operator's step: admit one pair of glasses by its public key (`flwr supernode register`)."""
    proc = subprocess.run([tool("flwr"), "supernode", "register", str(public_key), connection], env=fed.env,
                          capture_output=True, text=True, timeout=60, cwd=fed.folder)
    if proc.returncode != 0 or "registered successfully" not in proc.stdout:
        raise LaunchError(f"could not register {public_key}: {proc.stdout[-400:]}{proc.stderr[-400:]}")


def online_nodes(fed: Federation, connection: str) -> int:
    proc = subprocess.run([tool("flwr"), "supernode", "list", connection, "--format", "json"], env=fed.env,
                          capture_output=True, text=True, timeout=60, cwd=fed.folder)
    try:
        nodes = json.loads(proc.stdout).get("nodes", [])
    except ValueError:
        return 0
    return sum(1 for n in nodes if n.get("status") == "online")


def join_deployment(folder: Path, stores: list[Path], run_config: dict, timeout: float | None = None,
                    stranger: Path | None = None) -> dict:
    """A TLS SuperLink with SuperNode authentication on loopback; one `glassmate fl join` per store, each with its
    own key (registered first) and state folder; optionally a `stranger` store joining with an unregistered key;
    the run; everything stopped by PID. Returns each node's folder and the stranger's exit code and log."""
    from federated.credentials import node_keys, server_credentials

    folder.mkdir(parents=True, exist_ok=True)
    fed = Federation(folder, base_env(folder))
    creds = server_credentials(folder / "certs", ["127.0.0.1", "localhost"])
    http = free_port()
    address = f"127.0.0.1:{http}"
    out: dict = {"nodes": [], "stranger": None}
    try:
        fed.start(secure_superlink_args(http, folder, creds), "superlink", port=http)
        write_secure_connection(fed.env, "glassmate-secure", address, creds.ca_cert)
        for i, store in enumerate(stores):
            home = folder / f"node-{i}"
            keys = node_keys(home / "keys")
            register_node(fed, "glassmate-secure", keys.public)
            fed.start(_join_command(address, creds.ca_cert, keys.private, store), f"join-{i}",
                      env=base_env(home))
            out["nodes"].append(home)
        deadline = time.monotonic() + 120
        while online_nodes(fed, "glassmate-secure") < len(stores):
            if time.monotonic() > deadline:
                raise LaunchError(f"only {online_nodes(fed, 'glassmate-secure')} of {len(stores)} nodes came "
                                  f"online; see {folder}/join-*.log")
            time.sleep(1)
        if stranger is not None:
            home = folder / "stranger"
            keys = node_keys(home / "keys")  # a valid key pair and the CA: everything but being registered
            proc = fed.start(_join_command(address, creds.ca_cert, keys.private, stranger), "stranger",
                             env=base_env(home))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=120)
            out["stranger"] = {"exit": proc.poll(), "log": folder / "stranger.log"}
        flwr_run(fed, "glassmate-secure", run_config, timeout)
    finally:
        fed.stop()
    return out


def _join_command(address: str, ca_cert: Path, key: Path, store: Path) -> list[str]:
    return [tool("glassmate"), "fl", "join", "--superlink", address, "--root-certificates", str(ca_cert),
            "--key", str(key), "--store", str(store)]
