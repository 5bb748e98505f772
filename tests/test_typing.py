"""The public API as a user's type checker sees it.

``mypy --strict`` runs over the scripts in ``tests/typing/`` the way a user runs
it: from a directory of their own, with hitl_bus installed and the user
configuration ``tests/typing/mypy.ini`` (pydantic's plugin and ours).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hitl_bus
from hitl_bus import mypy_plugin

HERE = Path(__file__).parent / "typing"
pytest.importorskip("mypy")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module's runs: the first run fills it, the others reuse it."""
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(script: str, workdir: Path, cache: Path, config: Path) -> list[tuple[int, str, str]]:
    """mypy's errors on ``script`` copied into ``workdir``: (line, code, message) each."""
    shutil.copy(HERE / script, workdir / script)
    options = ["--config-file", str(config), "--cache-dir", str(cache), "--no-error-summary"]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *options, "--show-error-codes", script],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    errors = []
    for line in done.stdout.splitlines():
        found = re.match(rf"{re.escape(script)}:(\d+): error: (.*)  \[([a-z-]+)\]$", line)
        if found:
            errors.append((int(found[1]), found[3], found[2]))
        else:
            assert ": note: " in line, line  # anything else is mypy failing, not an error
    assert done.returncode == (1 if errors else 0), done.stdout
    return errors


def test_user_script_checks_in_sync_and_async_style(tmp_path: Path, cache_dir: Path) -> None:
    errors = run_mypy("user_script.py", tmp_path, cache_dir, HERE / "mypy.ini")
    assert errors == []


def test_wrong_types_are_reported(tmp_path: Path, cache_dir: Path) -> None:
    source = (HERE / "wrong_script.py").read_text().splitlines()
    expected = {
        (number, marker[1])
        for number, text in enumerate(source, start=1)
        if (marker := re.search(r"# E: ([a-z-]+)$", text))
    }
    errors = run_mypy("wrong_script.py", tmp_path, cache_dir, HERE / "mypy.ini")
    assert {(line, code) for line, code, _ in errors} == expected
    assert len(errors) == len(expected)


def test_without_the_plugin_only_awaited_plain_names_fail(tmp_path: Path, cache_dir: Path) -> None:
    """Other checkers see the sync type: sync code and the ``a`` twins still check."""
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nplugins = pydantic.mypy\n")
    errors = run_mypy("user_script.py", tmp_path, cache_dir / "plain", config)
    text = (HERE / "user_script.py").read_text()
    source = text.splitlines()
    sync_lines = {
        line
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef)
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    awaits = [
        line for line, code, message in errors if message.startswith('Incompatible types in "await')
    ]
    assert awaits, "the await form needs the plugin; without it mypy must say so"
    for line, _, message in errors:
        assert line not in sync_lines, (line, message)
        assert not re.search(r"await a[a-z_]+\(", source[line - 1]), (line, message)


def test_user_script_uses_every_public_name() -> None:
    tree = ast.parse((HERE / "user_script.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "hitl_bus"
        for alias in node.names
    }
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.value.id for node in ast.walk(tree) if isinstance(node, ast.Attribute)
             and isinstance(node.value, ast.Name)}  # fmt: skip
    assert set(hitl_bus.__all__) <= imported
    assert set(hitl_bus.__all__) <= used


def _dual_faces() -> tuple[set[str], set[tuple[str, str]]]:
    """Every dual function (by each module name it is bound to) and dual method, at runtime."""
    functions: set[str] = set()
    methods: set[tuple[str, str]] = set()
    for info in pkgutil.walk_packages(hitl_bus.__path__, "hitl_bus."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isfunction(value) and hasattr(value, "aio"):
                functions.add(f"{module.__name__}.{name}")
            if inspect.isclass(value) and value.__module__ == module.__name__:
                for attr, member in vars(value).items():
                    target: Any = getattr(member, "__func__", member)
                    if hasattr(target, "aio"):
                        methods.add((f"{value.__module__}.{value.__qualname__}", attr))
    return functions, methods


def test_the_plugin_knows_every_dual_face() -> None:
    functions, methods = _dual_faces()
    assert functions >= mypy_plugin.DUAL_FUNCTIONS
    dual_objects = {id(_resolve(name)) for name in functions}
    assert dual_objects == {id(_resolve(name)) for name in mypy_plugin.DUAL_FUNCTIONS}
    # ``InputReceiver.next`` applies the rule itself (``_sync.dispatch``).
    receiver_next = ("hitl_bus.inputs.receiving.InputReceiver", "next")
    assert methods | {receiver_next} == mypy_plugin.DUAL_METHODS


def _resolve(fullname: str) -> object:
    module, _, name = fullname.rpartition(".")
    return getattr(importlib.import_module(module), name)
