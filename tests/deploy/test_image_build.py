"""The image's build stage, outside Docker: `pip install .` on exactly the files the Dockerfile
copies into it gives an installable project with the `aia` entry point and its data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import ROOT, Dockerfile


def _build_stage_sources(dockerfile: Dockerfile) -> list[str]:
    stages = [i for i, (key, _) in enumerate(dockerfile.instructions) if key == "FROM"]
    build = dockerfile.instructions[stages[0]:stages[1]]
    sources: list[str] = []
    for key, arg in build:
        if key == "COPY":
            sources += [w for w in arg.split() if not w.startswith("--")][:-1]
    return sources


def test_pip_install_dot_on_the_build_context_gives_the_aia_command(tmp_path: Path) -> None:
    dockerfile = Dockerfile.read()
    (install,) = [arg for arg in dockerfile.all("RUN") if "pip install ." in arg]
    assert install.rstrip().endswith("/opt/venv/bin/pip install .")
    context = tmp_path / "src"
    for source in _build_stage_sources(dockerfile):
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    site = tmp_path / "site"
    # the image's `pip install .`, without the (already installed) dependencies or network
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--target", str(site), "."],
        cwd=context, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "bin" / "aia").is_file()
    assert list((site / "model" / "labels").glob("*.pbtxt"))
    check = subprocess.run(
        [sys.executable, "-c", "import service.settings, service.app, cli.main, bench.cli, "
         "exporters.artifact; print(service.settings.__file__)"],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().startswith(str(site))
