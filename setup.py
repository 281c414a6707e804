"""Build hook (the project's metadata is in pyproject.toml): ship sql/, migrations/ and config/.

They stay at the top of the repository, where DBAs and reviewers read them, and are copied whole into
the wheel as `service/_bundled/<folder>`, found at run time through importlib.resources (see
service/__init__.py). Whole folders, not lists: files other branches add are shipped without edits here.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED_FOLDERS = ("sql", "migrations", "config")


class BuildPyWithProjectData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the folders in place
        for folder in BUNDLED_FOLDERS:
            target = Path(self.build_lib) / "service" / "_bundled" / folder
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithProjectData})
