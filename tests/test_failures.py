"""Faults a run meets outside its own code: a full disk, a read-only folder, a process killed
mid-write, Ctrl-C or SIGTERM during start-up, and inputs that need a clear word. Each ends
with its exit status, one sentence and no traceback, and the last good checkpoint loads."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gantricks import WriteError, checkpoint, files, hookimpl
from gantricks.run import prepare
from gantricks.sampling import save_grid

from .conftest import QUIET

QUIET_CLI = ",".join(QUIET)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """64 small grayscale images: a dataset that loads in a moment (``--dataset folder``),
    where glyphs would render 60,000 in every process."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    gen = torch.Generator().manual_seed(0)
    for i in range(64):
        pixels = torch.randint(0, 256, (28, 28), generator=gen, dtype=torch.uint8)
        Image.fromarray(pixels.numpy(), mode="L").save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture
def small(images) -> list[str]:
    """Options of a small, fast CPU run on ``images``."""
    return ["--dataset", "folder", "--data-dir", str(images), "--image-size", "28",
            "--device", "cpu", "--set", "ngf=8", "ndf=8", "nz=16", "batch_size=16"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _as_in_a_terminal() -> None:
    """SIGINT and SIGTERM as a command typed in a terminal has them: a test run from a
    script's background job would otherwise hand its children SIGINT ignored."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)


def _gantricks(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("preexec_fn", _as_in_a_terminal)
    return subprocess.run(
        [sys.executable, "-m", "gantricks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
        **kw,
    )


def _patched(patch: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``gantricks ARGS`` in a process where ``patch`` (Python source) ran first."""
    code = f"{patch}\nimport sys\nfrom gantricks.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
        preexec_fn=_as_in_a_terminal,
    )


def _step(run: Path) -> int:
    return checkpoint.load(run)["step"]


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _clean_exit(proc: subprocess.CompletedProcess, status: int) -> str:
    """The exit status is ``status``, stderr holds no traceback; returns stderr."""
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images) -> dict[str, Path]:
    """Two small finished runs on ``images``, copied by each test that changes one:
    ``plain`` (28 px, last.pt at step 4) and ``minibatch32`` (32 px, with the minibatch
    plugin, step 2)."""
    root = tmp_path_factory.mktemp("runs")
    common = {"out_dir": str(root), "ngf": 8, "ndf": 8, "nz": 16, "batch_size": 16}
    common |= {"device": "cpu", "log_every": 2, "checkpoint": {"every": 2}}
    common |= {"dataset": "folder", "data_dir": str(images), "image_size": 28}
    plain, _ = prepare({**common, "name": "plain", "steps": 4}, plugins=QUIET)
    plain.fit()
    mb, _ = prepare(
        {**common, "name": "mb32", "steps": 2, "image_size": 32}, plugins=[*QUIET, "minibatch"]
    )
    mb.fit()
    return {"plain": plain.run_dir, "minibatch32": mb.run_dir}


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "runs" / run.name))


# ------------------------------------------------------------------------ a full disk
DISK_FULL_PLUGIN = """
import errno
from pydantic import Field
from gantricks import Plugin, PluginConfig, files, hookimpl


class Config(PluginConfig):
    after: int = Field(0, description="the disk is full from the end of this step on")


class Limited:
    '''A file that takes 4 kB, then fails as a full disk does.'''

    def __init__(self, f):
        self.f, self.left = f, 4096

    def write(self, data):
        n = memoryview(data).nbytes
        if n > self.left:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


class DiskFull(Plugin):
    Config = Config

    @hookimpl
    def gantricks_step_end(self, step):
        if step == self.config.after:
            init = files._Watched.__init__
            files._Watched.__init__ = lambda watched, f: init(watched, Limited(f))
"""


def test_a_full_disk_during_a_checkpoint_write_stops_cleanly(tmp_path, small):
    """torch's zip writer reports a failed write as "RuntimeError: [enforce fail at
    inline_container.cc] unexpected pos"; the user reads the disk's own words instead."""
    (tmp_path / "diskfull.py").write_text(DISK_FULL_PLUGIN)
    run = _gantricks(
        "train", *small, "--steps", "10", "--log-every", "5", "--out-dir", "runs",
        "--name", "a", "--plugins", f"{QUIET_CLI},./diskfull.py",
        "--set", "checkpoint.every=2", "diskfull.after=5", cwd=tmp_path,
    )  # fmt: skip
    err = _clean_exit(run, 2)
    last = Path("runs") / "a" / "checkpoints" / "last.pt"
    assert f"gantricks: error: could not write {last}: no space left on the device (ENOSPC)" in err
    assert "checkpoints/last.pt at step 4 is intact" in err
    assert "--resume runs/a" in err
    assert "inline_container" not in err and "plugin 'checkpoint' failed" not in err
    assert "could not save" not in run.stdout  # no second attempt, no second message
    assert _step(tmp_path / "runs" / "a") == 4  # the last good checkpoint loads
    assert _temps(tmp_path / "runs") == []  # the cut temporary file is gone
    assert err.count("gantricks: error:") == 1


def test_a_real_write_failure_from_the_kernel(runs, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) below a checkpoint's size: write(2) itself fails
    with EFBIG inside torch's zip writer."""
    import resource

    run_dir = _copy(runs["plain"], tmp_path)
    size = (run_dir / "checkpoints" / "last.pt").stat().st_size

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    proc = _gantricks("train", "--resume", str(run_dir), "--steps", "8", cwd=tmp_path,
                      preexec_fn=lambda: (_as_in_a_terminal(), limit()))  # fmt: skip
    err = _clean_exit(proc, 2)
    assert f"could not write {run_dir / 'checkpoints' / 'last.pt'}: " in err
    assert "(EFBIG)" in err and "checkpoints/last.pt at step 4 is intact" in err
    assert _step(run_dir) == 4 and _temps(run_dir) == []


def test_a_plugins_own_write_on_a_full_disk_is_a_write_error_not_a_crash(tiny):
    class Writer:
        @hookimpl
        def gantricks_step_end(self, trainer, step):
            if step == 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(trainer.run_dir / "x"))

    t, _ = prepare(
        {**tiny, "steps": 6, "checkpoint": {"every": 2}},
        plugins=QUIET,
        extra_plugins=[(Writer(), "writer")],
    )
    with pytest.raises(WriteError) as err:
        t.fit()
    message = str(err.value)
    assert message.startswith(f"could not write {t.run_dir / 'x'}: no space left on the device")
    assert "plugin 'writer', hook gantricks_step_end" in message
    # The checkpoint plugin saved step 3 after the error; the message reads it back.
    assert "checkpoints/last.pt at step 3 is intact" in message
    assert _step(t.run_dir) == 3


def test_atomic_writes_leave_no_partial_file(tmp_path, monkeypatch):
    grid = tmp_path / "grid.png"
    images = torch.zeros(4, 1, 8, 8)

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(memoryview(data))[:10])  # part of it, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    init = files._Watched.__init__
    monkeypatch.setattr(files._Watched, "__init__", lambda w, f: init(w, Full(f)))
    with pytest.raises(WriteError, match=r"grid.png: no space .*; no partial file was left"):
        save_grid(images, grid)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_grid(images, grid)
    before = grid.read_bytes()
    monkeypatch.setattr(files._Watched, "__init__", lambda w, f: init(w, Full(f)))
    with pytest.raises(WriteError, match=r"the existing grid\.png is unchanged"):
        save_grid(images + 1, grid)
    assert grid.read_bytes() == before and _temps(tmp_path) == []
    # Ctrl-C mid-write: the temporary file goes too.
    monkeypatch.undo()

    def interrupted(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "x.json", interrupted)
    assert _temps(tmp_path) == [] and not (tmp_path / "x.json").exists()


def test_a_failed_metrics_append_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    files.append_text(path, '{"step": 1}\n')
    real_open = open

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, *a):
            return self.f.seek(*a)

        def fileno(self):
            return self.f.fileno()

        def write(self, data):
            self.f.write(bytes(data)[:5])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "open", lambda *a, **k: HalfWritten(real_open(*a, **k)),
                        raising=False)  # fmt: skip
    with pytest.raises(WriteError, match=r"metrics\.jsonl keeps its earlier lines"):
        files.append_text(path, '{"step": 2, "loss": 1.0}\n')
    assert path.read_text() == '{"step": 1}\n'


# ------------------------------------------------------------------ a read-only folder
READ_ONLY = """
import builtins, errno, io, os
RO = os.path.abspath(os.environ["GANTRICKS_TEST_READ_ONLY"])

def check(path):
    p = os.path.abspath(os.fsdecode(os.fspath(path)))
    if p == RO or p.startswith(RO + os.sep):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

def writes(mode):
    return any(c in mode for c in "wax+")

def guard_open(real):
    def opened(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and writes(mode):
            check(file)
        return real(file, mode, *a, **k)
    return opened

builtins.open = guard_open(builtins.open)
io.open = guard_open(io.open)
real_os_open = os.open
def os_open(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        check(path)
    return real_os_open(path, flags, *a, **k)
os.open = os_open
for name in ("mkdir", "rmdir", "unlink", "remove", "replace", "rename"):
    def guarded(path, *a, _real=getattr(os, name), **k):
        check(path)
        return _real(path, *a, **k)
    setattr(os, name, guarded)
"""


def _read_only(folder: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    os.environ["GANTRICKS_TEST_READ_ONLY"] = str(folder)
    try:
        return _patched(READ_ONLY, *args, cwd=cwd)
    finally:
        del os.environ["GANTRICKS_TEST_READ_ONLY"]


def test_a_read_only_run_folder(runs, tmp_path, small):
    run_dir = _copy(runs["plain"], tmp_path)
    proc = _read_only(run_dir, "train", "--resume", str(run_dir), "--steps", "6", cwd=tmp_path)
    err = _clean_exit(proc, 2)
    assert f"could not write {run_dir / 'config.json'}: the file system is read-only (EROFS)" in err
    assert "checkpoints/last.pt at step 4 is intact" in err
    assert _step(run_dir) == 4
    # A new run under a read-only --out-dir makes nothing.
    out = tmp_path / "ro"
    out.mkdir()
    proc = _read_only(out, "train", *small, "--steps", "2", "--out-dir", str(out), "--name",
                      "new", cwd=tmp_path)  # fmt: skip
    err = _clean_exit(proc, 2)
    assert f"could not make the run folder {out / 'new'}: the file system is read-only" in err
    assert list(out.iterdir()) == []
    # gantricks sample onto a read-only folder: the message, no partial grid.
    proc = _read_only(out, "sample", str(run_dir), "--out", str(out / "grid.png"), cwd=tmp_path)
    err = _clean_exit(proc, 2)
    assert f"could not write {out / 'grid.png'}: the file system is read-only (EROFS)" in err
    assert list(out.iterdir()) == []


# ------------------------------------------------------- a process killed mid-write
def test_stale_temporary_files_are_removed_when_the_run_resumes(runs, tmp_path):
    run_dir = _copy(runs["plain"], tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    ckpts = run_dir / "checkpoints"
    killed = ckpts / f".last.pt.{dead}.k1ll3d_x.tmp"  # kill -9 during a checkpoint write
    older = run_dir / "samples" / ".step_0000004.png.abcd_123.tmp"  # an older gantricks's
    alive = ckpts / f".best.pt.{os.getpid()}.st1ll_0n.tmp"  # a process still writing
    for p in (killed, older, alive):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"cut short")
    proc = _gantricks("train", "--resume", str(run_dir), "--steps", "6", cwd=tmp_path)
    err = _clean_exit(proc, 0)
    assert "removed 2 temporary file(s) that a run killed while writing left" in err
    assert f"checkpoints/{killed.name}" in err and f"samples/{older.name}" in err
    assert f"another process still running may be writing: checkpoints/{alive.name}" in err
    assert not killed.exists() and not older.exists() and alive.exists()
    assert _step(run_dir) == 6


# ----------------------------------------------------------- Ctrl-C during start-up
def _signal_when(proc: subprocess.Popen, ready, signum: int, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signum)
            return True
        time.sleep(0.005)
    return False


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """Its output once it has exited; killed (and the test failed) if it does not."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running {timeout:.0f} s after the signal: {err[-2000:]}")


def _torch_loading(pid: int) -> bool:
    try:
        return "torch/lib/libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_modules_import_ends_quietly(tmp_path, small, signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gantricks", "train", *small, "--steps", "1000", "--out-dir",
         "runs"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        preexec_fn=_as_in_a_terminal,
    )  # fmt: skip
    sent = _signal_when(proc, lambda: _torch_loading(proc.pid), signum)
    _, err = _finish(proc)
    assert sent, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "gantricks: stopped" in err
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_a_signal_while_the_run_is_set_up_ends_quietly(tmp_path, small):
    """Once the run folder is claimed the rest of set-up (the trainer, config.json, the
    first steps) follows: Ctrl-C there, too, exits 130 without a traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gantricks", "train", *small, "--steps", "100000", "--out-dir",
         "runs", "--name", "r", "--plugins", QUIET_CLI],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        preexec_fn=_as_in_a_terminal,
    )  # fmt: skip
    sent = _signal_when(proc, (tmp_path / "runs" / "r" / "config.json").exists, signal.SIGINT)
    out, err = _finish(proc)
    assert sent, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "Traceback" not in out


# ------------------------------------------------------ inputs that need a clear word
def test_resume_with_another_image_size_names_the_flag(runs, tmp_path):
    run_dir = runs["minibatch32"]
    proc = _gantricks("train", "--resume", str(run_dir), "--image-size", "28", cwd=tmp_path)
    err = _clean_exit(proc, 2)
    assert "--image-size 28 does not fit checkpoint" in err
    assert "resume with --image-size 32, or leave --image-size" in err
    assert _step(run_dir) == 2


def test_resume_without_a_plugin_that_changes_the_model_names_it(runs, tmp_path):
    run_dir = runs["minibatch32"]
    proc = _gantricks("train", "--resume", str(run_dir), "--plugins", f"{QUIET_CLI},label_smooth",
                      "--steps", "3", cwd=tmp_path)  # fmt: skip
    err = _clean_exit(proc, 2)
    assert "was trained with plugin minibatch, which changes the model" in err
    assert "add minibatch to --plugins, or leave --plugins out" in err
    assert "architecture differs" not in err
    assert _step(run_dir) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "RUN", "--nrow", "0"],
        ["sample", "RUN", "--n", "-3"],
        ["eval", "RUN", "--metrics", "classifier", "--splits", "0"],
        ["nearest", "RUN", "--k", "0"],
        ["interpolate", "RUN", "--steps", "0"],
    ],
    ids=lambda a: f"{a[0]} {a[-2]} {a[-1]}",
)
def test_non_positive_counts_are_refused(runs, tmp_path, args):
    args = [str(runs["plain"]) if a == "RUN" else a for a in args]
    proc = _gantricks(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    err = _clean_exit(proc, 2)
    assert f"gantricks: error: {args[-2]} must be a positive number, got {args[-1]}" in err
    assert not (tmp_path / "out").exists()
    assert _step(runs["plain"]) == 4
