"""Build steps of the hookwire Python SDK that pyproject.toml cannot say declaratively.

The gRPC code is generated from the contract in the repository's `proto/hookwire/v1/*.proto` at build time,
never committed, so the Python SDK cannot drift from the protos the kernel and the Rust SDK are built from:

- `build_py` runs `grpc_tools.protoc` over the protos and writes `hookwire/v1/*_pb2.py`, `*_pb2.pyi` and
  `*_pb2_grpc.py` next to the hand-written package (into the build folder, or into the source folder for an
  editable install).
- `sdist` puts a copy of the protos into the source archive, so that a wheel built from the archive alone (as
  `python -m build` does) finds them too.
- The runtime requirements are those of the code generator that ran: generated code checks at import that
  `grpcio` and `protobuf` are at least as new as the generator it came from.

Where the protos are looked for, first found wins:

1. `$HOOKWIRE_PROTO_DIR`, the folder that holds `hookwire/v1/*.proto`: for a build from a copy of this folder
   made outside the repository;
2. `proto/` beside this file: an unpacked source archive;
3. `proto/` in this folder's nearest ancestor that has `proto/hookwire/v1/`: the repository (`../../proto`). pip
   (21.3 and later) builds a local folder where it is, so this holds for `pip install clients/python` from any
   working directory.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
# The protos' own folder inside a proto root; protoc is run from the root so that their imports
# (`import "hookwire/v1/common.proto"`) and the generated Python imports (`from hookwire.v1 import ...`) match.
PROTO_PACKAGE = Path("hookwire") / "v1"
PROTO_DIR_VARIABLE = "HOOKWIRE_PROTO_DIR"


def find_proto_root() -> Path:
    """Returns the folder that holds `hookwire/v1/*.proto`, looked for as the module docstring says."""
    from_environment = os.environ.get(PROTO_DIR_VARIABLE, "").strip()
    if from_environment:
        root = Path(from_environment).expanduser().resolve()
        if not _holds_protos(root):
            raise RuntimeError(f"${PROTO_DIR_VARIABLE}={from_environment}: no {PROTO_PACKAGE}/*.proto there")
        return root
    for folder in (HERE, *HERE.parents):
        root = folder / "proto"
        if _holds_protos(root):
            return root
    raise RuntimeError(
        f"cannot find hookwire's protos ({PROTO_PACKAGE}/*.proto) in a proto/ folder beside or above {HERE}; "
        f"build from the hookwire repository (pip install clients/python) or set ${PROTO_DIR_VARIABLE}"
    )


def _holds_protos(root: Path) -> bool:
    return any((root / PROTO_PACKAGE).glob("*.proto"))


def generate_grpc_code(output_root: Path) -> list[Path]:
    """Generates the messages, their type stubs and the gRPC stubs into `output_root/hookwire/v1/`.

    Returns the files written. protoc emits absolute imports (`from hookwire.v1 import common_pb2`); they resolve
    because the generated package is `hookwire.v1`, a subpackage of this very package, so nothing is rewritten
    and nothing is added to `sys.path`.
    """
    from grpc_tools import protoc  # a build requirement, so imported only when building

    proto_root = find_proto_root()
    protos = sorted((proto_root / PROTO_PACKAGE).glob("*.proto"))
    output_package = output_root / PROTO_PACKAGE
    # Stale files of a proto that was removed or renamed must not survive in an incremental build.
    if output_package.exists():
        shutil.rmtree(output_package)
    output_package.mkdir(parents=True)
    # grpcio-tools ships the well-known types (`google/protobuf/*.proto`); `protoc.main` does not add them itself.
    well_known_types = Path(protoc.__file__).resolve().parent / "_proto"
    arguments = [
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--proto_path={well_known_types}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *(str(proto) for proto in protos),
    ]
    if protoc.main(arguments) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {', '.join(str(proto) for proto in protos)}")
    init_file = output_package / "__init__.py"
    init_file.write_text(
        '"""The messages and gRPC stubs of hookwire\'s contract, generated from `proto/hookwire/v1/*.proto` at '
        'build time. Do not edit."""\n'
    )
    return sorted(output_package.iterdir())


class BuildPyWithGrpc(build_py):
    """`build_py` that also generates `hookwire/v1/` from the protos."""

    def run(self) -> None:
        super().run()
        # An editable install imports the package from the source folder, so the generated code goes there
        # (it is ignored by git); any other build writes it into the build folder that becomes the wheel.
        output_root = HERE if self.editable_mode else Path(self.build_lib)
        self._generated_files = [str(path) for path in generate_grpc_code(output_root)]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_generated_files", [])]


class SdistWithProtos(sdist):
    """`sdist` that carries a copy of the protos, so that the archive builds on its own."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        proto_root = find_proto_root()
        for proto in sorted((proto_root / PROTO_PACKAGE).glob("*.proto")):
            target = Path(base_dir) / "proto" / PROTO_PACKAGE / proto.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(proto, target)


def runtime_requirements() -> list[str]:
    """Returns `grpcio` and `protobuf` at least as new as the generator that builds this package.

    grpcio-tools states which protobuf runtimes its generated code works with in its own requirements, so that
    range is copied as it is; generated gRPC stubs refuse a `grpcio` older than the grpcio-tools release.
    """
    try:
        tools_version = importlib.metadata.version("grpcio-tools")
        tools_requirements = importlib.metadata.requires("grpcio-tools") or []
    except importlib.metadata.PackageNotFoundError:
        return ["grpcio", "protobuf"]
    protobuf_requirement = next(
        (
            requirement.split(";")[0].strip()
            for requirement in tools_requirements
            if re.match(r"protobuf\b", requirement)
        ),
        "protobuf",
    )
    release = re.match(r"\d+(\.\d+)*", tools_version)
    grpcio_requirement = f"grpcio>={release.group(0)}" if release else "grpcio"
    return [grpcio_requirement, protobuf_requirement]


setup(
    cmdclass={"build_py": BuildPyWithGrpc, "sdist": SdistWithProtos},
    install_requires=runtime_requirements(),
)
