"""A real Matrix homeserver for tests: `matrix-synapse` on 127.0.0.1 with SQLite, open registration, no federation
and no rate limits, started as its own process and stopped by PID (bounded in time)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0

CONFIG = """\
server_name: "localhost"
pid_file: {folder}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {folder}/homeserver.db
media_store_path: {folder}/media
signing_key_path: {folder}/signing.key
log_config: {folder}/log.yaml
report_stats: false
enable_registration: true
enable_registration_without_verification: true
trusted_key_servers: []
suppress_key_server_warning: true
macaroon_secret_key: "glassmate-test-macaroon"
form_secret: "glassmate-test-form"
url_preview_enabled: false
presence:
  enabled: false
rc_message: {{per_second: 1000, burst_count: 1000}}
rc_registration: {{per_second: 1000, burst_count: 1000}}
rc_login:
  address: {{per_second: 1000, burst_count: 1000}}
  account: {{per_second: 1000, burst_count: 1000}}
  failed_attempts: {{per_second: 1000, burst_count: 1000}}
rc_joins:
  local: {{per_second: 1000, burst_count: 1000}}
  remote: {{per_second: 1000, burst_count: 1000}}
rc_invites:
  per_room: {{per_second: 1000, burst_count: 1000}}
  per_user: {{per_second: 1000, burst_count: 1000}}
rc_key_requests: {{per_second: 1000, burst_count: 1000}}
"""

LOG_CONFIG = """\
version: 1
formatters:
  plain: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}
handlers:
  file: {class: logging.FileHandler, filename: FOLDER/homeserver.log, formatter: plain}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Synapse:
    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "homeserver.yaml").write_text(CONFIG.format(folder=self.folder, port=self.port))
        (self.folder / "log.yaml").write_text(LOG_CONFIG.replace("FOLDER", str(self.folder)))
        subprocess.run([sys.executable, "-m", "synapse.app.homeserver", "--config-path",
                        str(self.folder / "homeserver.yaml"), "--generate-keys"], check=True,
                       capture_output=True, timeout=60)

    def start(self) -> Synapse:
        out = (self.folder / "stdout.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "--config-path",
                                         str(self.folder / "homeserver.yaml")], stdout=out, stderr=out,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.process.returncode}: "
                                   f"{(self.folder / 'stdout.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"synapse did not answer on {self.url} within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
        self.process = None
