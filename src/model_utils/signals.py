"""Ctrl-C and SIGTERM in every entry script: "interrupted" (exit 130) and "terminated" (exit 143).

MindSpore 2.8's runtime installs its own C handler for SIGINT at every graph or kernel run
(libmindspore_common / libmindspore_ms_backend), which sends SIGTERM to the process: Python
never sees the Ctrl-C and the process dies with 143 and no message. Re-installing Python's
handler after each run cannot close the window during the run itself, so SIGINT is kept away
from every C handler instead: ``install`` blocks it in the main thread before the heavy imports,
so every thread started later (MindSpore's, the data pipeline's) inherits the block, and one
watcher thread takes it with ``sigwait`` and raises KeyboardInterrupt in the main thread.
Processes forked later inherit the block too: data workers leave Ctrl-C to the main process,
which stops them.

A KeyboardInterrupt raised while MindSpore's C extension is being imported leaves it half
initialised and the interpreter aborts at exit ("Fatal Python error ... GIL", 134); its at-exit
hook also needs the whole package. So until the entry calls ``ready``
(``src.model_utils.entry.guarded`` does), and again after its work (``hold``), Ctrl-C and SIGTERM
end the process at once from the watcher ("interrupted" 130, "terminated" 143): nothing is being
written then. An entry that would import MindSpore only inside its work (the converter) imports
it before ``ready`` (``preload``).

An interrupt raised where Python swallows exceptions (an at-fork hook while a pool starts, a
``__del__``) is handed back to the watcher (``sys.unraisablehook``), which raises it again.

SIGTERM raises ``Terminated`` (a BaseException, so no ``except Exception`` swallows it) in the
main thread; training replaces that handler with its own (finish the step, checkpoint, exit 0:
src.train.distributed.StopRequest).
"""
import _thread
import importlib
import os
import signal
import sys

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM reached the process: unwind (finally blocks remove temporaries), then exit 143."""


_lock = _thread.allocate_lock()
_state = {"watcher": None, "main": None, "working": False, "unraisable": None}  # watcher: its thread id
_NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
_WAKE = signal.SIGURG  # ignored by default and used by nothing here: it only interrupts a blocking call


def _raise(signum, frame):
    """Python's handler of both signals in the main thread: raise while the entry works, else end at once."""
    with _lock:
        working = _state["working"]
    if not working:
        _end(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()


def _end(signum):
    _say(_NAMES[signum])
    os._exit(EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED)


def _wake_main(signum, frame):
    """Handler of the signal that wakes a blocked main thread; the interrupt itself is already pending."""


def _watch():
    while True:
        signum = signal.sigwait({signal.SIGINT, signal.SIGTERM})
        with _lock:
            working = _state["working"]
        if not working:  # imports or interpreter exit: nothing is being written, nothing to unwind
            _end(signum)
        _thread.interrupt_main(signum)  # runs the main thread's Python handler for signum
        signal.pthread_kill(_state["main"], _WAKE)


def _say(message):
    """Log ``message`` as an error through the entry's logging, or to stderr before it is set up."""
    logging = sys.modules.get("logging")
    if logging is not None and logging.getLogger().handlers:
        logging.getLogger("centernet").error("%s", message)
    else:
        os.write(2, (message + "\n").encode())


def _unraisable(info):
    """sys.unraisablehook: an interrupt raised where Python swallows exceptions (an at-fork hook, a
    ``__del__``) is raised again in the main thread instead of being printed and lost."""
    if info.exc_type is KeyboardInterrupt or info.exc_type is Terminated:  # the watcher raises it anew
        signum = signal.SIGINT if info.exc_type is KeyboardInterrupt else signal.SIGTERM
        signal.pthread_kill(_state["watcher"], signum)
        return
    _state["unraisable"](info)


def _forked_child():
    """A forked worker (data reading, MindSpore's pipeline) has no watcher: SIGTERM ends it quietly, as by
    default (multiprocessing's terminate, PR_SET_PDEATHSIG); Ctrl-C stays blocked, for the main process."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    sys.unraisablehook = _state["unraisable"]
    _state.update(watcher=None, main=None, working=False)


def install(preload=()):
    """Take Ctrl-C and SIGTERM away from C handlers; until ``ready``, either ends the process at once.

    Call it at the top of an entry script, before the imports that load MindSpore, and only
    when the script runs as a program (``if __name__ == "__main__"``): a test importing the
    script keeps its own signals. ``preload``: modules the entry would otherwise import later,
    inside its work (``"mindspore"``), imported now. Linux only (``sigwait``); elsewhere it
    does nothing.
    """
    if _state["watcher"] is not None or not hasattr(signal, "pthread_sigmask"):
        return
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job started with Ctrl-C ignored
        signal.signal(signal.SIGINT, _raise)                    # keeps ignoring it
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(_WAKE, _wake_main)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    _state["unraisable"], sys.unraisablehook = sys.unraisablehook, _unraisable
    _state["main"] = _thread.get_ident()  # signal.signal above succeeded: this is the main thread
    _state["watcher"] = _thread.start_new_thread(_watch, ())
    os.register_at_fork(after_in_child=_forked_child)
    for name in preload:
        importlib.import_module(name)


def ready():
    """The entry's imports are done, its work starts: Ctrl-C raises KeyboardInterrupt in the main thread.

    SIGTERM now goes to the main thread's Python handler (``Terminated``, or training's own),
    directly or through the watcher. Processes forked from here on get SIGTERM (multiprocessing's
    terminate, PR_SET_PDEATHSIG) but not Ctrl-C, which the main process handles for them.
    """
    if _state["watcher"] is None:
        return
    with _lock:
        _state["working"] = True
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def hold():
    """The entry's work is done: a Ctrl-C or SIGTERM from here on ends the process at once."""
    if _state["watcher"] is None:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with _lock:
        _state["working"] = False


def exit_code(err):
    """The exit code of an interrupt: 130 for KeyboardInterrupt, 143 for Terminated."""
    return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED
