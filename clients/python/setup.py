"""Generates the rami.v1 stubs into the package at build time (metadata is in pyproject.toml).

The stubs go to rami_client/_proto/rami/v1/ and import each other as
`rami_client._proto.rami.v1`: protoc writes imports from the .proto's path under its -I root,
so the proto is staged at that path instead of patching the generated code afterwards, and
no top-level `rami` package is claimed in site-packages. The proto package stays `rami.v1`,
so message names and RPC paths (/rami.v1.Inference/Generate) are the server's.
"""
import pathlib
import shutil
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent
PROTO = pathlib.PurePosixPath("rami/v1/inference.proto")
STUBS = pathlib.PurePosixPath("rami_client/_proto")
# A checkout has the proto at ../../proto; an sdist carries a copy in proto/ (see Sdist).
PROTO_ROOTS = [HERE / "proto", HERE.parent.parent / "proto"]


def proto_path() -> pathlib.Path:
    for root in PROTO_ROOTS:
        if (root / PROTO).is_file():
            return root / PROTO
    raise FileNotFoundError(f"{PROTO} not found under {[str(r) for r in PROTO_ROOTS]}")


class BuildPy(build_py):
    def run(self):
        super().run()
        self.generate_stubs(pathlib.Path(self.build_lib))

    def generate_stubs(self, out: pathlib.Path) -> None:
        import grpc_tools  # a build requirement (pyproject.toml); an sdist does not need it
        from grpc_tools import protoc

        with tempfile.TemporaryDirectory() as staging:
            staged = pathlib.Path(staging) / STUBS / PROTO
            staged.parent.mkdir(parents=True)
            shutil.copyfile(proto_path(), staged)
            well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"  # timestamp.proto
            args = ["protoc", f"-I{staging}", f"-I{well_known}", f"--python_out={out}",
                    f"--pyi_out={out}", f"--grpc_python_out={out}", str(STUBS / PROTO)]
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed on {proto_path()}")
        for package in (STUBS, STUBS / "rami", STUBS / "rami/v1"):
            (out / package / "__init__.py").touch()


class Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = pathlib.Path(base_dir) / "proto" / PROTO
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto_path(), target)


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
