"""The ``main()`` of every entry script: configuration, logging, ModelArts copies, one-line errors."""
import logging
import os
import sys

from src.model_utils import signals

logger = logging.getLogger("centernet")

EXIT_USAGE = 2  # bad configuration, data or checkpoint: the message says what to change
EXIT_INTERRUPTED = signals.EXIT_INTERRUPTED  # Ctrl-C: "interrupted"
EXIT_TERMINATED = signals.EXIT_TERMINATED  # SIGTERM (outside training's graceful stop): "terminated"


def setup_logging(level="INFO", log_file=None, rank=None):
    """Log to stderr (and ``log_file``) with time, level and, in distributed runs, the rank.

    Calling it again replaces only the handlers it installed before.
    """
    tag = "" if rank is None else " [rank %d]" % rank
    fmt = logging.Formatter("%(asctime)s %(levelname)s" + tag + " %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    root.setLevel(getattr(logging, level))
    for handler in [h for h in root.handlers if getattr(h, "_centernet", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(fmt)
        handler._centernet = True
        root.addHandler(handler)


def guarded(action):
    """Run ``action()`` and return the process exit code: 0, or 2 after a one-line error.

    Every expected failure (configuration, data, checkpoint, file system, device: ValueError,
    OSError and RuntimeError with their subclasses) is logged as one line; the traceback is
    logged at DEBUG level only. Ctrl-C gives "interrupted" and 130, SIGTERM "terminated" and 143
    (src.model_utils.signals: installed by the entry script, released here once its imports are
    done); whatever the action was writing is left as it was before (atomic writes, temporaries
    removed on the way out).
    """
    try:
        signals.ready()
        action()
    except (ValueError, OSError, RuntimeError) as err:
        logger.debug("details", exc_info=True)
        logger.error("%s", err)
        return EXIT_USAGE
    except (KeyboardInterrupt, signals.Terminated) as err:
        logger.debug("details", exc_info=True)
        logger.error("%s", "terminated" if isinstance(err, signals.Terminated) else "interrupted")
        return signals.exit_code(err)
    finally:
        signals.hold()
    return 0


def entry_main(script, run, argv=None, modelarts=True):
    """Parse the configuration for ``script``, then ``run(cfg)``; returns the process exit code.

    Errors are reported as ``guarded`` does. ``modelarts`` wraps ``run`` in the ModelArts
    copies when ``enable_modelarts`` is set.
    """
    from src.model_utils.config import get_config
    from src.model_utils.moxing_adapter import moxing_wrapper
    setup_logging()

    def action():
        cfg = get_config(argv, script=script)
        setup_logging(cfg.log_level)
        (moxing_wrapper(cfg)(run) if modelarts else run)(cfg)
    return guarded(action)
