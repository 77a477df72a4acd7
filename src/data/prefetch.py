"""Ordered background map over a list (threads; no MindSpore), used to read images ahead of their consumer."""
import collections
import concurrent.futures
import itertools


class Prefetcher:
    """Ordered ``map(fn, items)`` computed ``depth`` items ahead by ``workers`` threads.

    An exception raised by ``fn`` surfaces when its item is reached; closing (or leaving the
    ``with`` block) cancels the work not started yet.
    """

    def __init__(self, fn, items, workers=1, depth=4):
        self.fn, self.items = fn, list(items)
        self.depth = max(1, depth)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers),
                                                          thread_name_prefix="prefetch")

    def __iter__(self):
        pending = collections.deque()
        source = iter(self.items)
        for item in source:
            pending.append(self.pool.submit(self.fn, item))
            if len(pending) >= self.depth:
                break
        while pending:
            result = pending.popleft().result()
            for nxt in itertools.islice(source, 1):
                pending.append(self.pool.submit(self.fn, nxt))
            yield result

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
