"""The test suite. gRPC's fork handlers are off in test processes: starting PostgreSQL's tools as
another user makes Python fork (not vfork), and the handlers then crash the child while calls are busy."""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
