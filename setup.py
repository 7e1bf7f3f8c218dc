"""Packaging hook: copy the top-level data folders into the wheel as woodpecker/_data/.

The operator library (kernels/), the knob spaces (search_spaces/) and the device files (hw_profiles/) live at the
top of the repository where they are reviewed like code; an installed woodpecker must carry them, so the build
copies them under the package. `woodpecker.data` looks there first and falls back to the checkout.
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("kernels", "search_spaces", "hw_profiles")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        root = pathlib.Path(__file__).resolve().parent
        for name in DATA_DIRS:
            dst = pathlib.Path(self.build_lib) / "woodpecker" / "_data" / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(root / name, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
