"""Docs that cannot drift: every docstring example runs, every README command parses, every example pipeline
in a docstring or the README validates."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import shlex
import textwrap
from pathlib import Path

import pytest
import typer.main
import yaml

from rrd_pipeline.cli import app
from rrd_pipeline.graph import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rrd", "rrd_pipeline", "research")
MODULES = sorted(info.name for package in PACKAGES
                 for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."))
# A reST literal block: a paragraph ending in "::", a blank line, then indented lines.
LITERAL = re.compile(r"::\n\n((?:[ \t]+\S.*\n|[ \t]*\n)+)")


def _docstrings(module) -> list[tuple[str, str]]:
    """(where, docstring) of the module and of every class, function and method it defines."""
    found = [(module.__name__, module.__doc__ or "")]
    for name, obj in vars(module).items():
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == module.__name__:
            found.append((f"{module.__name__}.{name}", obj.__doc__ or ""))
            if inspect.isclass(obj):
                found += [(f"{module.__name__}.{name}.{m}", f.__doc__ or "") for m, f in vars(obj).items()
                          if inspect.isfunction(f) and f.__doc__]
    return found


def _check_pipeline(text: str, tmp_path: Path) -> None:
    """Validate a pipeline example (its Path parameters may name files that do not exist here)."""
    path = tmp_path / "example.yaml"
    path.write_text(text)
    load_pipeline(path)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"


@pytest.mark.parametrize("name", MODULES)
def test_code_in_docstrings_is_a_doctest_or_a_validated_pipeline(name, tmp_path):
    """A literal block that is Python must be written as a doctest (so it runs); one that is a pipeline
    is validated; anything else (a formula, a file listing) is prose."""
    module = importlib.import_module(name)
    for where, doc in _docstrings(module):
        for block in LITERAL.findall(inspect.cleandoc(doc) + "\n"):
            text = textwrap.dedent(block)
            data = yaml.safe_load(text) if re.match(r"\w+:", text) else None
            if isinstance(data, dict) and "stages" in data:
                _check_pipeline(text, tmp_path)
                continue
            try:
                compile(text, where, "exec")
            except SyntaxError:
                continue
            pytest.fail(f"{where}: a code example that no test runs; write it as a doctest (>>>):\n{text}")


def _readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def _commands(block: str) -> list[str]:
    """The block's commands, backslash continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


README_COMMANDS = [cmd for block in _readme_blocks("bash") for cmd in _commands(block)]


def test_readme_opens_with_the_two_commands():
    first = _readme_blocks("bash")[0]
    assert _commands(first) == ['python3 -m pip install "torch==2.13.0" -e ".[test]" && rrd demo --out demo_out',
                                "python3 -m pytest -q"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("python3 -m pytest -q")


@pytest.mark.parametrize("command", README_COMMANDS)
def test_readme_commands_parse(command):
    """Each ``rrd`` command of the README parses with the CLI's own parser (names, choices, types); each
    benchmark command names a script that exists and options it declares."""
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[0] == "rrd":
            group = typer.main.get_command(app)
            ctx = group.make_context("rrd", words[1:], resilient_parsing=False)
            sub = group.get_command(ctx, words[1])
            assert sub is not None, f"unknown command in README: {part}"
            sub.make_context(words[1], words[2:], parent=ctx)
        elif words[0] in ("python", "python3") and words[1].startswith("benchmarks/"):
            script = ROOT / words[1]
            assert script.is_file(), f"README names a missing script: {part}"
            source = script.read_text()
            for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                assert f'"{flag}"' in source, f"{words[1]} declares no option {flag}: {part}"
        else:
            assert words[:3] in (["python3", "-m", "pip"], ["python3", "-m", "pytest"]), \
                f"README command of a kind no test checks: {part}"


def test_readme_pipelines_validate(tmp_path):
    for block in _readme_blocks("yaml"):
        _check_pipeline(block, tmp_path)
