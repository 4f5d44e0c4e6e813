"""No traceback, ever: every command and subcommand of the click group, with missing input
files, unwritable output paths and bad values, ends with exit 0, 1 or 2 and at most one
``otakit: REASON: message`` line on stderr (docs/release.md "Exit codes").

The walk builds each command line from the command's own parameters (enumerated from the group,
so a new command is walked without editing this file): every required parameter gets a plausible
value, then one parameter at a time gets a bad one. The named cases below reach the write that
used to fail with a traceback, with every input valid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

from otakit.appimage import make_app_image
from otakit.cli import _register, cli, main
from otakit.paths import ROOT

ERROR_LINE = re.compile(r"^otakit: [A-Z][A-Z0-9_]*: \S")
UNWRITABLE = "/dev/null/otakit/out"  # a path below a file: no one, not even root, can create it
# Commands that would run for long (a server, a campaign, a toolchain) when a walk variant
# happens to leave every input valid: given an argument that makes them stop at once.
STOPPERS: dict[str, list[str]] = {
    "serve": ["--header-timeout", "0"],
    "sim campaign": ["--seeds", "lots"],
    "compliance report": ["--junit", "f.bin"],
}


def _leaves(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(cmd, click.Group):
        return [leaf for name in sorted(cmd.commands)
                for leaf in _leaves(cmd.commands[name], (*path, name))]
    return [path]


def _command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd


def _all_leaves() -> list[tuple[str, ...]]:
    _register()
    return _leaves(cli)


def _good(param: click.Parameter, files: dict[str, str]) -> str | None:
    t = param.type
    if isinstance(t, click.Path):
        if not t.file_okay:
            return files["dir"] if t.exists else files["newdir"]
        return files["file"] if t.exists else files["newfile"]
    if isinstance(t, click.Choice):
        return str(t.choices[0])
    if isinstance(t, click.types.IntParamType | click.types.FloatParamType):
        lo = getattr(t, "min", None)
        return str(lo if lo is not None else 1)
    return "x"


def _bad_values(param: click.Parameter, files: dict[str, str]) -> list[str]:
    t = param.type
    if isinstance(t, click.Path):
        if t.exists:
            return [files["missing"], files["dir"] if t.file_okay and not t.dir_okay
                    else files["file"]]
        return [UNWRITABLE, files["missing"]]
    if isinstance(t, click.Choice | click.types.IntParamType | click.types.FloatParamType):
        return ["lots"]
    if param.callback is not None or param.name in {"heapsize", "expires", "flash"}:
        return ["lots"]
    return []


def _argv(path: tuple[str, ...], cmd: click.Command, files: dict[str, str],
          override: click.Parameter | None = None, bad: str = "") -> list[str]:
    opts: list[str] = list(STOPPERS.get(" ".join(path), []))  # before: a variant overrides
    args: list[str] = []
    for p in cmd.params:
        if p.name in {"help", "version"}:
            continue
        if p is override:
            value: str | None = bad
        elif p.required:
            value = _good(p, files)
        else:
            continue
        if isinstance(p, click.Argument):
            args.append(str(value))
        elif isinstance(p, click.Option) and p.is_flag:
            opts.append(p.opts[0])
        else:
            opts += [p.opts[0], str(value)]  # type: ignore[union-attr]
    return [*path, *opts, *args]


def _check(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)
    assert "INTERNAL" not in err, (argv, err)
    if code:
        lines = [ln for ln in err.splitlines() if not ln.startswith("otakit: warning:")]
        assert len(lines) == 1 and ERROR_LINE.match(lines[0]), (argv, err)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("OTAKIT_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("ESPTOOL_PORT", raising=False)
    (tmp_path / "d").mkdir()
    (tmp_path / "f.bin").write_bytes(b"not what any command expects\n")
    return {"file": str(tmp_path / "f.bin"), "dir": str(tmp_path / "d"),
            "newfile": str(tmp_path / "new.out"), "newdir": str(tmp_path / "newdir"),
            "missing": str(tmp_path / "missing" / "x.bin")}


@pytest.mark.parametrize("path", _all_leaves(), ids=" ".join)
def test_walk_every_command(path: tuple[str, ...], files: dict[str, str],
                            capsys: pytest.CaptureFixture) -> None:
    cmd = _command(path)
    assert main([*path, "--help"]) == 0
    capsys.readouterr()
    _check([*path, "--no-such-option"], capsys)
    for p in cmd.params:
        for bad in _bad_values(p, files):
            _check(_argv(path, cmd, files, p, bad), capsys)


def test_a_missing_input_file_is_one_line_and_exit_1(files: dict[str, str],
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["layout", "check", "--board", "esp32", "--app", files["missing"]]) == 1
    err = capsys.readouterr().err
    assert err == f"otakit: NOT_FOUND: '--app': File '{files['missing']}' does not exist.\n", err
    assert main(["sim", "inspect", files["dir"]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: BAD_PATH: 'IMAGE': "), err


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["release", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: USAGE: ") and "--help" in err
    assert main(["release", "--key", "k.pem"]) == 2  # a missing required option or argument
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: USAGE: Missing "), err
    assert main(["sim", "inspect"]) == 2
    assert capsys.readouterr().err.startswith("otakit: USAGE: Missing argument 'IMAGE'")


@pytest.fixture
def keyed(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    assert main(["keygen", "--alg", "ed25519", "--out", "keys"]) == 0
    Path("app.bin").write_bytes(make_app_image("1.1.0"))
    return files


NAMED_CASES = {
    "release --repo": ["release", "--key", "keys/release.pem", "--repo", UNWRITABLE, "--product",
                       "door", "--board", "esp32", "--version", "1", "--sequence", "1",
                       "--support-end", "2031-12-31", "app.bin"],
    "keygen --out": ["keygen", "--alg", "ed25519", "--out", UNWRITABLE],
    "sim flash --out": ["sim", "flash", "--app", "app.bin", "--out", UNWRITABLE],
    "key export --out": ["key", "export", "--micropython", "keys/release.pub.pem", "--out",
                         UNWRITABLE],
    "layout suggest --out": ["layout", "suggest", "--flash", "4MB", "--app", "app.bin", "--out",
                             UNWRITABLE],
    "publish --to": ["publish", "--repo", "d", "--to", UNWRITABLE],
    "serve --access-log": ["serve", "--repo", "d", "--port", "0", "--access-log", UNWRITABLE],
    "serve --token-file": ["serve", "--repo", "d", "--port", "0", "--token-file", UNWRITABLE],
    "sim run --heapsize": ["sim", "run", "--heapsize", "lots", "f.bin"],
}


@pytest.mark.parametrize("name", NAMED_CASES)
def test_unwritable_outputs_are_one_line(name: str, keyed: dict[str, str],
                                         capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    argv = NAMED_CASES[name]
    assert main(argv) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ERROR_LINE.match(err), err
    if "heapsize" not in name:
        assert err.startswith("otakit: NOT_A_DIRECTORY: ") and UNWRITABLE.split("/out")[0] in err


def test_serve_without_telemetry_writes_no_admin_token(files: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    # $HOME where nothing can be created: serving needs nothing there without --telemetry
    env = {**os.environ, "HOME": "/dev/null", "PYTHONPATH": str(ROOT / "host_tools")}
    proc = subprocess.Popen([sys.executable, "-m", "otakit", "serve", "--repo", "d", "--port",
                             "0", "--access-log", "log"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("serving d on http://127.0.0.1:"), (line, proc.stderr)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and "admin token" not in out and err == "", (out, err)
    # with --telemetry the token is made in $HOME/.config: unwritable is one line, exit 1
    monkeypatch.setenv("HOME", "/dev/null")
    assert main(["serve", "--repo", "d", "--telemetry", "t.db", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: NOT_A_DIRECTORY: ") and "/dev/null/.config" in err, err


def test_passphrase_without_a_terminal_names_both_ways(keyed: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture,
                                                       recwarn: pytest.WarningsRecorder) -> None:
    monkeypatch.delenv("OTAKIT_KEY_PASSPHRASE")
    release = ["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
               "--board", "esp32", "--version", "1", "--sequence", "1", "--support-end",
               "2031-12-31", "app.bin"]
    capsys.readouterr()
    assert main(release) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: PASSWORD_REQUIRED: "), err
    assert "OTAKIT_KEY_PASSPHRASE" in err and "--passphrase-file" in err
    assert main(["keygen", "--alg", "ed25519", "--out", "k2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: PASSWORD_REQUIRED: ") and "--passphrase-file" in err, err
    assert not [w for w in recwarn if "GetPass" in type(w.message).__name__]
    Path("pw.txt").write_text("wrong\n")
    assert main([release[0], "--passphrase-file", "pw.txt", *release[1:]]) == 1
    assert capsys.readouterr().err.startswith("otakit: BAD_PASSPHRASE: wrong passphrase")
    Path("pw.txt").write_text("pw\n")
    assert main([release[0], "--passphrase-file", "pw.txt", *release[1:]]) == 0
    assert main(["keygen", "--alg", "ed25519", "--out", "k2", "--passphrase-file", "pw.txt"]) == 0
    assert main(["key", "id", "k2/release.pem", "--passphrase-file", "pw.txt"]) == 0


def test_a_failed_release_leaves_nothing_behind(keyed: dict[str, str],
                                                capsys: pytest.CaptureFixture) -> None:
    # a partly writable repository: blobs/ can be written, the channel's directory cannot
    Path("repo/blobs/sha256").mkdir(parents=True)
    Path("repo/door").write_text("a file where the product's directory belongs")
    argv = ["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
            "--board", "esp32", "--version", "1", "--sequence", "1", "--support-end",
            "2031-12-31", "--encoding", "deflate", "--sbom", "app.bin"]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: NOT_A_DIRECTORY: "), err
    assert sorted(p.name for p in Path("repo").rglob("*")) == ["blobs", "door", "sha256"]
    Path("repo/door").unlink()
    assert main(argv) == 0
    assert len(list(Path("repo/blobs/sha256").iterdir())) == 3  # image, deflate, SBOM
