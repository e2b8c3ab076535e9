"""The tests' JVMs start with the client compiler only and the serial collector.

Most of the suite's CPU is Java's: every test that deploys Spark starts a master, workers,
drivers, executors and notebook kernels, each a JVM that lives for seconds, and a JVM that
lives for seconds spends most of its CPU compiling with C2 (the optimising compiler) code it
will never run long enough to profit from, and on G1's parallel threads. For JVMs of that
life `-XX:TieredStopAtLevel=1 -XX:+UseSerialGC` costs about 40% less CPU (a pyspark job: 19
s -> 11 s; test_local_spark: 229 s -> 137 s, docs/BENCHMARKS.md). The flags change how fast
Java runs, not what it does; Spark, the deployment and every check are the same.

How: at configuration the session finds Java as dodas does (`find_java`), makes a JAVA_HOME
beside it whose `bin/java` runs the real one with those flags (everything else in it links
to the real JDK), and exports JAVA_HOME, which dodas looks at first. xdist's workers inherit
it; every command, deployment and daemon a test starts finds that Java. A test that sets
JAVA_HOME itself (a missing or broken Java) is not affected. DODAS_TEST_JIT=full keeps the
JVMs' defaults (to compare, or to look for a difference the flags would make)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
MARK = "dodas-tests-quick-java"


def _make(real: Path, where: Path) -> Path:
    home = where / "jdk"
    (home / "bin").mkdir(parents=True)
    for entry in real.iterdir():
        if entry.name != "bin":
            (home / entry.name).symlink_to(entry)
    for tool in (real / "bin").iterdir():
        if tool.name != "java":
            (home / "bin" / tool.name).symlink_to(tool)
    java = home / "bin" / "java"
    java.write_text(f'#!/bin/sh\n# {MARK}\nexec "{real}/bin/java" {" ".join(FLAGS)} "$@"\n')
    java.chmod(0o755)
    return home


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("DODAS_TEST_JIT") == "full":
        return
    current = os.environ.get("JAVA_HOME", "")
    if current and MARK in _read(Path(current) / "bin" / "java"):
        return  # an xdist worker: the controller made it
    from dodas.providers import local

    found = local.find_java()
    local._java_cache.clear()  # found again, through the new JAVA_HOME, when first asked
    if "home" not in found:
        return  # the tests that need Java say what is missing
    where = Path(tempfile.mkdtemp(prefix="dodas-tests-java-"))
    config.stash[_KEY] = where
    os.environ["JAVA_HOME"] = str(_make(Path(found["home"]), where))


def pytest_unconfigure(config: pytest.Config) -> None:
    where = config.stash.get(_KEY, None)
    if where is not None:
        shutil.rmtree(where, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:200]
    except OSError:
        return ""


_KEY = pytest.StashKey[Path]()
