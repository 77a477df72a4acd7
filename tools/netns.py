"""Two hosts on one machine: two network namespaces joined by a veth pair.

Each namespace ("host") has its own loopback, its own network stack and one end of the veth pair,
named eth0, with a private address (10.A.B.1/24 and 10.A.B.2/24, A.B derived from the pid); a
command run on a host also gets its own host name (``unshare --uts``). So a program sees two
machines: msrun starts its scheduler only where ``ip -j addr`` lists MASTER_ADDR, and the launchers
name the host a rank ran on. Used by tests/test_multihost.py and bench/bench_multihost.py.

Needs root, iproute2 (``ip``) and util-linux (``unshare``). Namespace and host names hold the pid and
a counter, so concurrent runs do not collide; the veth pair is created inside the namespaces and
never appears in the machine's own interfaces. ``close()`` kills what still runs in the namespaces
and deletes them, which removes the veth pair with them.

    with TwoHosts() as hosts:
        proc = subprocess.Popen(hosts.command(0, ["bash", "script.sh"]))
"""
import itertools
import os
import shutil
import signal
import subprocess
import time

# Root's usual search path: ``ip`` lives in /usr/sbin or /sbin, absent from many users' PATH.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PREFIX_LEN = 24
_COUNTER = itertools.count()


class NetnsError(RuntimeError):
    """The namespaces could not be made or removed; the message names the failed command."""


def _which(tool):
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + SEARCH_PATH)


def unavailable():
    """Why two hosts cannot be made on this machine (one line), or None when they can be attempted."""
    if os.geteuid() != 0:
        return "network namespaces need root (this process runs as uid %d)" % os.geteuid()
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if _which(tool) is None:
            return "no '%s' command: install %s (apt-get install %s)" % (tool, package, package)
    return None


class TwoHosts:
    """Host 0 and host 1: two network namespaces joined by a veth pair (a context manager).

    ``names`` are the namespace names, also the host names of the commands run in them;
    ``addresses`` their IPv4 addresses on the shared /24 (``addresses[0]`` is host 0's).
    """

    def __init__(self):
        reason = unavailable()
        if reason:
            raise NetnsError(reason)
        self.ip = _which("ip")
        self.unshare = _which("unshare")
        pid = os.getpid()
        tag = "cn%d-%d" % (pid, next(_COUNTER))
        self.names = ("%s-host0" % tag, "%s-host1" % tag)
        subnet = "10.%d.%d" % ((pid >> 8) & 255, pid & 255)
        self.addresses = ("%s.1" % subnet, "%s.2" % subnet)
        self._made = []
        try:
            for name in self.names:
                self._ip("netns", "add", name)
                self._made.append(name)
            self._ip("link", "add", "eth0", "netns", self.names[0], "type", "veth",
                     "peer", "name", "eth0", "netns", self.names[1])
            for name, address in zip(self.names, self.addresses):
                self._ip("-n", name, "addr", "add", "%s/%d" % (address, PREFIX_LEN), "dev", "eth0")
                self._ip("-n", name, "link", "set", "lo", "up")  # the launchers and msrun also use 127.0.0.1
                self._ip("-n", name, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise

    def _ip(self, *args):
        proc = subprocess.run([self.ip] + list(args), capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise NetnsError("ip %s failed: %s" % (" ".join(args), proc.stderr.strip() or proc.returncode))
        return proc.stdout

    def command(self, host, args):
        """The argv that runs ``args`` on ``host`` (0 or 1): in its namespace, with its host name.

        The process keeps its pid through each step (ip netns exec, unshare and sh all exec), so
        a process group started with it holds the command itself.
        """
        return [self.ip, "netns", "exec", self.names[host], self.unshare, "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.names[host]] + list(args)

    def pids(self, host):
        """The pids of the processes running in ``host``'s namespace."""
        return [int(p) for p in self._ip("netns", "pids", self.names[host]).split()]

    def close(self):
        """Kill what still runs in the namespaces (by pid), then delete them and their veth pair."""
        errors = []
        for host, name in enumerate(self.names):
            if name not in self._made:
                continue
            try:
                deadline = time.time() + 10
                while True:  # a namespace outlives its last process: none may be left
                    pids = self.pids(host)
                    if not pids:
                        break
                    if time.time() > deadline:
                        errors.append("processes %s still run in %s" % (pids, name))
                        break
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.05)
                self._ip("netns", "delete", name)
                self._made.remove(name)
            except (NetnsError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
        if errors:
            raise NetnsError("cleaning up the namespaces: " + "; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
