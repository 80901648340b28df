"""`aia` stands above the packages and imports only the subcommand it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.main import COMMANDS, build_parser, chosen_command

HEAVY = ("torch", "fastapi", "uvicorn", "redis", "onnxruntime", "av", "model", "service",
         "exporters", "bench")


def loaded_after(argv: list[str]) -> set[str]:
    """Top-level packages in sys.modules after `aia ARGV` in a fresh interpreter."""
    code = ("import sys\nfrom cli.main import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint(' '.join(sorted({m.split('.')[0] "
            "for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(out.strip().splitlines()[-1].split())


def test_help_imports_no_subcommand_module() -> None:
    loaded = loaded_after(["--help"])
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_a_subcommand_imports_only_its_own_package() -> None:
    loaded = loaded_after(["info", "--help"])
    assert "model" in loaded
    assert not loaded & {"service", "fastapi", "uvicorn", "redis", "onnxruntime", "bench"}


def test_every_subcommand_module_builds_its_flags() -> None:
    for name in COMMANDS:
        parser = build_parser(name)
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0


def test_the_chosen_command_is_the_first_word() -> None:
    assert chosen_command(["--help"]) is None
    assert chosen_command(["serve", "--port", "1"]) == "serve"
    assert chosen_command(["-h", "detect", "x.mp4"]) == "detect"
