"""Test double of ModelArts' ``moxing`` (which exists only on ModelArts): ``mox.file`` copies
between local folders. Urls with a scheme (obs://, s3://) are unreachable here, as is any path
that does not exist, so the tests can exercise the failure paths too. Every call is appended to
$FAKE_MOXING_LOG when set, so tests can count the copies."""
import os
import shutil


def _log(*words):
    path = os.environ.get("FAKE_MOXING_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(" ".join(str(w) for w in words) + "\n")


class _File:
    @staticmethod
    def exists(url):
        _log("exists", url)
        if "://" in url:
            raise OSError("fake moxing: no network here, cannot reach %s" % url)
        return os.path.exists(url)

    @staticmethod
    def copy_parallel(src_url, dst_url):
        _log("copy_parallel", src_url, dst_url)
        if "://" in src_url or "://" in dst_url:
            raise OSError("fake moxing: no network here")
        if os.path.isdir(src_url):
            shutil.copytree(src_url, dst_url, dirs_exist_ok=True)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(dst_url)), exist_ok=True)
            shutil.copy2(src_url, dst_url)


file = _File()  # noqa: A001  (moxing's own name)
