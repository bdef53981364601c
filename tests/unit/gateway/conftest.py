"""Credentials made once for the gateway's unit tests: a CA, a signing key and its key set."""

from pathlib import Path

import pytest

from tools.credentials import LocalCredentials, ensure_local_credentials


@pytest.fixture(scope="session")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> LocalCredentials:
    return ensure_local_credentials(Path(tmp_path_factory.mktemp("gateway-credentials")))
