"""Atomic file output: every file the project writes appears complete under its name, or not at all.

A writer works on a hidden temporary beside the target (same folder, so the rename is atomic on
one file system); the temporary is flushed to disk and renamed onto the target only when the
writer succeeded, and removed when it failed.

Every temporary, file or folder, is named ``.tmp-<pid>-<name>...`` after the process that
writes it and the target it stands for; ``remove_stale_temporaries`` deletes those of processes
that are gone (a run killed mid-write), whoever wrote them (checkpoints, MindRecord shards).

Every write through ``atomic_path`` that meets a full disk raises ``DiskFullError`` naming the
file, the space it needs and the space free. ``prepare_output_folder`` proves an output folder
writable (and with room) before an entry starts its work; ``FolderLock`` gives one process the
ownership of an output folder for its life (``claim_output_folder`` does both).
"""
import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import re
import shutil
import socket
import tempfile

logger = logging.getLogger(__name__)
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-")


def fsync_path(path, directory=False):
    """Flush ``path`` (a file, or a folder's entries with ``directory``) to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def size_text(nbytes):
    """'12.3 MB': ``nbytes`` in KB, MB or GB."""
    value, unit = nbytes / 1024.0, "KB"
    for bigger in ("MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024.0, bigger
    return "%.1f %s" % (value, unit)


class DiskFullError(OSError):
    """No space left on the device: the message names the file, the space it needs and the space free."""

    def __init__(self, message):
        super().__init__(errno.ENOSPC, message)

    def __str__(self):
        return self.strerror


def _existing_ancestor(path):
    """The nearest existing folder at or above ``path``; raises NotADirectoryError when a file is in the way."""
    folder = os.path.abspath(path)
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", folder)
    return folder


def disk_full_error(path, nbytes=None, written=None, what="file", setting=None):
    """The DiskFullError for writing ``path``: needs about ``nbytes`` (or more than the ``written`` bytes)."""
    folder = _existing_ancestor(os.path.dirname(os.path.abspath(path)))
    if nbytes:
        need = "about %s" % size_text(nbytes)
    elif written:
        need = "more than the %s written when the disk filled" % size_text(written)
    else:
        need = "more than was free"
    return DiskFullError("no space left on the device to %s %s: it needs %s, %s are free in %s; free some space "
                         "or choose another %s" % ("save " + what if what != "file" else "write", path, need,
                                                    size_text(shutil.disk_usage(folder).free), folder,
                                                    setting or "output folder"))


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def temporary_name(path, suffix=""):
    """Hidden name beside ``path`` that identifies this process: ``.tmp-<pid>-<name><suffix>``."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, ".tmp-%d-%s%s" % (os.getpid(), name, suffix))


def temporary_folder(path):
    """A new hidden folder beside ``path`` for output that cannot be written under temporary names:
    ``.tmp-<pid>-<name>-<random>`` (see ``publish_folder``)."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkdtemp(prefix=".tmp-%d-%s-" % (os.getpid(), name), dir=folder)


def process_alive(pid):
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder, name=""):
    """Delete the temporaries ``.tmp-<pid>-<name>*`` in ``folder`` (files and folders) whose process is gone.

    A run killed while writing leaves them (a partial checkpoint, MindSpore's own ``.tmp`` beside
    it, a conversion's partial shards); they never count as output. Temporaries of a live
    process are kept. Returns the removed paths, sorted.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for entry in sorted(os.listdir(folder)):
        match = _TEMPORARY.match(entry)
        if not match or not entry[match.end():].startswith(name) or process_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, entry)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
        logger.warning("removed %s, left by a process that was killed", path)
        removed.append(path)
    return removed


def remove_own_temporaries(folder, name):
    """Delete this process's temporaries ``.tmp-<pid>-<name>*`` in ``folder`` (a run that failed or was
    interrupted, wherever it was, even between creating one and keeping its name)."""
    prefix = ".tmp-%d-%s" % (os.getpid(), name)
    for entry in os.listdir(folder) if os.path.isdir(folder) else []:
        if entry.startswith(prefix):
            path = os.path.join(folder, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


@contextlib.contextmanager
def atomic_path(path, suffix="", durable=False, nbytes=None, what="file", setting=None):
    """Yield a temporary path to write; rename it onto ``path`` when the block succeeds.

    ``suffix`` ends the temporary name (for writers that insist on an extension). With
    ``durable`` the file and its folder are fsync'ed, so a machine crash leaves the old file or
    the new one. On any failure the temporary (and anything a writer added to its name) is
    removed and the error propagates; a full disk becomes ``disk_full_error`` (``nbytes``: the
    size the file needs, when known; ``what`` and ``setting`` name the file and the option
    choosing its folder in the message).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        if not os.path.isfile(tmp):
            raise OSError("nothing was written to %s (temporary %s missing)" % (path, tmp))
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(folder, directory=True)
    except OSError as err:
        if err.errno not in _DISK_FULL or isinstance(err, DiskFullError):
            raise
        written = sum(os.path.getsize(f) for f in glob.glob(glob.escape(tmp) + "*") if os.path.isfile(f))
        _remove_temporaries(tmp)  # before measuring the space free
        raise disk_full_error(path, nbytes, written, what, setting) from err
    finally:
        _remove_temporaries(tmp)


def _remove_temporaries(tmp):
    for leftover in glob.glob(glob.escape(tmp) + "*"):
        if os.path.isfile(leftover):
            os.remove(leftover)


def write_bytes_atomic(path, data, setting=None):
    """Write ``data`` (bytes) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, nbytes=len(data), setting=setting) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_text_atomic(path, text, setting=None):
    """Write ``text`` (utf-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"), setting)


def write_json_atomic(path, obj, indent=None, setting=None):
    """json.dump ``obj`` to ``path`` atomically (compact unless ``indent``); returns ``path``."""
    separators = (",", ":") if indent is None else (",", ": ")
    return write_text_atomic(path, json.dumps(obj, indent=indent, separators=separators), setting)


def write_array_atomic(path, array, setting=None):
    """Write the raw bytes of a numpy array (``ndarray.tofile``) to ``path`` atomically."""
    with atomic_path(path, nbytes=array.nbytes, setting=setting) as tmp:
        with open(tmp, "wb") as f:  # (ndarray.tofile reports a full disk without an errno)
            f.write(array.tobytes())
    return path


class UnwritableFolderError(OSError):
    """An output folder that cannot be created or written: the message says why and which option to change."""

    def __str__(self):
        return self.strerror


def _unwritable_reason(folder, err):
    """Why ``folder`` cannot be an output folder, from the OSError that creating or writing it raised."""
    if isinstance(err, (FileExistsError, NotADirectoryError)) or err.errno in (errno.EEXIST, errno.ENOTDIR):
        path = os.path.abspath(folder)
        while path != os.path.dirname(path) and not os.path.exists(path):
            path = os.path.dirname(path)
        if not os.path.isdir(path):
            return "%s is a file, not a folder" % path
    return (err.strerror or str(err)).lower()


def prepare_output_folder(folder, setting, need=0, create=True):
    """Create ``folder`` and prove it writable (a hidden probe file) before the work; returns its free bytes.

    Raises UnwritableFolderError 'cannot write to <folder> (<setting>): <reason>; choose another
    <setting>' for a file in the way, a path under a file, a missing permission or a read-only file
    system, and DiskFullError when fewer than ``need`` bytes are free. Without ``create`` a missing
    folder is not made: its nearest existing parent is checked instead (the writer creates it).
    """
    try:
        if create:
            os.makedirs(folder, exist_ok=True)
        probe_dir = folder if create else _existing_ancestor(folder)
        if not create and os.path.lexists(folder) and not os.path.isdir(folder):
            raise FileExistsError(errno.EEXIST, "file exists", folder)
        fd, probe = tempfile.mkstemp(prefix=".tmp-%d-probe-" % os.getpid(), dir=probe_dir)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as err:
        raise UnwritableFolderError(err.errno, "cannot write to %s (%s): %s; choose another %s"
                      % (folder, setting, _unwritable_reason(folder, err), setting)) from err
    free = shutil.disk_usage(_existing_ancestor(folder)).free
    if need and free < need:
        raise DiskFullError("not enough space in %s (%s) to start: it needs about %s, %s are free; free some "
                            "space or choose another %s" % (folder, setting, size_text(need), size_text(free),
                                                            setting))
    logger.info("output folder %s: %s free", folder, size_text(free))
    return free


def publish_folder(tmp_dir, folder, last):
    """Move every file of the finished temporary folder ``tmp_dir`` into ``folder``, ``last`` after the others.

    For outputs of several files that name each other and so cannot be written under
    temporary names (MindRecord shards and their index): they are written complete in a
    hidden folder inside ``folder`` and renamed into place; readers take the presence of
    ``last`` as the sign that the set is complete.
    """
    names = sorted(os.listdir(tmp_dir))
    if last not in names:
        raise OSError("nothing to publish: %s is missing from %s" % (last, tmp_dir))
    for name in [n for n in names if n != last] + [last]:
        os.replace(os.path.join(tmp_dir, name), os.path.join(folder, name))


def replace_folder(tmp_dir, folder):
    """Put the finished temporary folder ``tmp_dir`` in the place of ``folder`` (whose old content goes).

    For output of one run that must not mix with an earlier run's (eval.py's drawings): it is
    written in full under ``temporary_folder(folder)`` and replaces the old folder in two renames.
    """
    old = None
    if os.path.lexists(folder):
        old = temporary_folder(folder)
        os.rmdir(old)
        os.rename(folder, old)
    os.rename(tmp_dir, folder)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class FolderInUseError(OSError):
    """The folder is locked by another live process (``pid`` on ``host``, None when unreadable)."""

    def __init__(self, message, pid=None, host=None):
        super().__init__(message)
        self.pid, self.host = pid, host

    def __str__(self):
        return self.args[0]


class FolderLock:
    """Exclusive ownership of ``folder``: the file ``.lock`` in it, held with ``fcntl.flock`` until release.

    The lock file holds the owner's pid and host, for the message a second claimant gets. The
    operating system drops the lock when the owner's process ends, however it ends, so a lock
    is never stale; the file itself stays (it means nothing without the lock). ``flock`` is
    per open file, so a second FolderLock of the same folder is refused even in the owner's
    process. Usable as a context manager.
    """

    NAME = ".lock"

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, self.NAME)
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self, who="process", hint=""):
        """Take the lock or raise FolderInUseError: '<folder> is in use by another <who> (pid N on host H)<hint>'."""
        if self._fd is not None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            pid, host = self.owner()
            raise FolderInUseError("%s is in use by another %s (pid %s on host %s)%s"
                                   % (self.folder, who, pid if pid else "unknown", host or "unknown", hint),
                                   pid, host) from None
        os.ftruncate(fd, 0)
        os.write(fd, ("%d %s\n" % (os.getpid(), socket.gethostname())).encode())
        self._fd = fd
        return self

    def owner(self):
        """(pid, host) written in the lock file, (None, None) when it is empty or unreadable."""
        try:
            with open(self.path, encoding="utf-8") as f:
                pid, host = f.read().split()[:2]
            return int(pid), host
        except (OSError, ValueError):
            return None, None

    def release(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

    def __del__(self):
        self.release()


def claim_output_folder(folder, setting, who, need=0):
    """``prepare_output_folder``, then a held FolderLock of it: the folder is this run's until released.

    A second run into the same folder is refused: '<folder> is in use by another <who> (pid N
    on host H): wait for it to finish, or choose another <setting>'.
    """
    prepare_output_folder(folder, setting, need)
    return FolderLock(folder).acquire(who, ": wait for it to finish, or choose another %s" % setting)
