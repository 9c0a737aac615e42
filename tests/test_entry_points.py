"""Every entry point's ``--help`` works: each ``python -m`` module and bench script, and each of
their subcommands, found in the tree (not listed here), so a new one is covered when it is added.

The entry points run as they do from a shell (``__name__ == "__main__"``, ``sys.argv`` set, the
script's folder first on ``sys.path``), each in its own process: one runner process imports the
heavy libraries every entry point shares (torch, transformers, datasets, kfp) once, then forks a
child per entry point, which keeps ~40 runs within seconds on two cores. kserve is not among the
shared imports: ``import kserve`` parses ``sys.argv``, and each child must do that with its own.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("textclf", "serving", "pipelines", "components")
MAIN_GUARD = re.compile(r'^if __name__ == "__main__":', re.MULTILINE)

RUNNER = r"""
import json, os, runpy, sys, traceback
import torch, transformers, datasets, kfp  # shared by every child; kserve is not (it parses sys.argv on import)

def run(entry, argv, log):
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1), os.dup2(fd, 2)
        code = 0
        try:
            if entry.endswith(".py"):
                sys.argv, sys.path[0] = [entry, *argv], os.path.dirname(os.path.abspath(entry))
                runpy.run_path(entry, run_name="__main__")
            else:
                sys.argv = [entry, *argv]
                runpy.run_module(entry, run_name="__main__", alter_sys=True)
            print("returned without exiting")  # --help must exit
            code = 3
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

jobs = json.loads(sys.argv[1])
print(json.dumps([run(entry, argv, log) for entry, argv, log in jobs]))
"""


def entry_points() -> list[str]:
    """``python -m`` modules (packages with ``__main__.py``, modules with a main guard) and bench scripts."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if path.name == "__main__.py":
                found.append(module.removesuffix(".__main__"))
            elif MAIN_GUARD.search(path.read_text()):
                found.append(module)
    found += [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bench").glob("*.py"))
        if MAIN_GUARD.search(path.read_text())
    ]
    return found


def run_help(jobs: list[tuple[str, list[str]]], logs: Path, runners: int = 1) -> list[tuple[int, str]]:
    """(exit code, output) of each ``entry argv...``, run by :data:`RUNNER` (``runners`` of them side by side)."""
    spec = [(entry, argv, str(logs / f"{i}.log")) for i, (entry, argv) in enumerate(jobs)]
    shares = [spec[i::runners] for i in range(runners)]
    started = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, json.dumps(share)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    codes = {}
    for share, runner in zip(shares, started):
        out, err = runner.communicate(timeout=600)
        assert runner.returncode == 0, err[-3000:]
        codes.update(zip((log for _, _, log in share), json.loads(out.strip().splitlines()[-1])))
    return [(codes[log], Path(log).read_text()) for _, _, log in spec]


def subcommands(help_text: str) -> list[str]:
    """The subcommands a help text offers: the ``{a,b,c}`` choice of its usage line, if any."""
    usage = help_text.split("\n\n", 1)[0]
    match = re.search(r"\{([\w,-]+)\}", usage)
    return match.group(1).split(",") if match else []


def test_the_entry_points_are_found():
    found = entry_points()
    for expected in ("pipelines", "serving", "serving.monitor", "serving.rollout", "textclf.train", "bench/scale.py"):
        assert expected in found
    assert not [e for e in found if e.startswith("tests")]


def test_every_entry_point_and_subcommand_prints_its_help(tmp_path):
    entries = entry_points()
    first = run_help([(entry, ["--help"]) for entry in entries], tmp_path)
    failed = {entry: out[-1500:] for entry, (code, out) in zip(entries, first) if code != 0 or "usage:" not in out}
    assert not failed, failed
    nested = [(entry, [sub, "--help"]) for entry, (_, out) in zip(entries, first) for sub in subcommands(out)]
    assert {"run", "compile", "submit"} <= {argv[0] for entry, argv in nested if entry == "pipelines"}
    second = run_help(nested, tmp_path)
    failed = {
        f"{entry} {argv[0]}": out[-1500:]
        for (entry, argv), (code, out) in zip(nested, second)
        if code != 0 or "usage:" not in out
    }
    assert not failed, failed
