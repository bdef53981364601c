"""Generates Python messages, gRPC stubs and type stubs from `protos/` into `gen/`.

Also copies the Google API protos the contract imports into `build/proto-deps/`, so that `buf lint`
resolves them from the pinned `googleapis-common-protos` package instead of a remote registry.
"""

import shutil
import sys
from pathlib import Path

import google.type.money_pb2
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"
DEPS = ROOT / "build" / "proto-deps"
GOOGLEAPIS = Path(google.type.money_pb2.__file__).resolve().parent.parent.parent
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"
GOOGLE_DEPS = ("google/type", "google/rpc", "google/api")


def copy_google_deps() -> None:
    """Mirrors the googleapis .proto files (not their Python modules) for buf."""
    shutil.rmtree(DEPS, ignore_errors=True)
    for package in GOOGLE_DEPS:
        target = DEPS / package
        target.mkdir(parents=True)
        for proto in (GOOGLEAPIS / package).glob("*.proto"):
            shutil.copy(proto, target / proto.name)


def generate() -> int:
    """Runs protoc over every contract file; returns protoc's exit status."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    # grpc_tools ships no types; protoc.main returns protoc's exit status.
    status: int = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{GOOGLEAPIS}",
            f"-I{WELL_KNOWN}",
            f"--python_out={OUT}",
            f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
            f"--mypy_grpc_out={OUT}",
            *sources,
        ]
    )
    return status


if __name__ == "__main__":
    copy_google_deps()
    sys.exit(generate())
