"""tools/netns.py: two hosts with their own host names, addresses and loopback, reaching each other
over the veth pair, and nothing left behind by close() (namespaces, processes in them)."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import missing
from tools import netns

# Host 0 listens on its address (the port is free: the namespace is new) and sends its host name
# and the peer's address to the one client.
SERVER = """
import socket, sys
with socket.create_server((sys.argv[1], 8118)) as server:
    print("listening", flush=True)
    conn, peer = server.accept()
    with conn:
        conn.sendall(("%s %s" % (socket.gethostname(), peer[0])).encode())
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 8118), timeout=20) as conn:
    print(conn.recv(200).decode())
"""


def _run(hosts, host, args):
    proc = subprocess.run(hosts.command(host, args), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _namespaces():
    """The names of the machine's named network namespaces."""
    out = subprocess.run([netns._which("ip"), "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _wait_for_pid(hosts, host, pid, timeout=20):
    """The pids in ``host`` once ``pid`` is among them (it enters the namespace before its first exec)."""
    deadline = time.time() + timeout
    pids = hosts.pids(host)
    while pid not in pids and time.time() < deadline:
        time.sleep(0.05)
        pids = hosts.pids(host)
    return pids


def test_each_host_has_its_name_address_and_loopback_and_reaches_the_other(two_hosts):
    hosts = two_hosts
    assert len(set(hosts.names)) == 2 and len(set(hosts.addresses)) == 2
    for host in (0, 1):
        assert _run(hosts, host, ["hostname"]).strip() == hosts.names[host]
        links = {link["ifname"]: link for link in json.loads(_run(hosts, host, ["ip", "-j", "-4", "addr"]))}
        assert sorted(links) == ["eth0", "lo"]
        assert [a["local"] for a in links["eth0"]["addr_info"]] == [hosts.addresses[host]]
        assert "UP" in links["lo"]["flags"] and "UP" in links["eth0"]["flags"]
    assert os.uname().nodename not in hosts.names  # the machine keeps its own host name

    server = subprocess.Popen(hosts.command(0, [sys.executable, "-c", SERVER, hosts.addresses[0]]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        reply = _run(hosts, 1, [sys.executable, "-c", CLIENT, hosts.addresses[0]]).split()
        assert reply == [hosts.names[0], hosts.addresses[1]]  # host 1 came over the veth pair
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_close_kills_what_runs_in_the_hosts_and_removes_them():
    try:
        hosts = netns.TwoHosts()
    except netns.NetnsError as e:
        missing("cannot make two hosts as network namespaces: %s" % e)
    try:
        sleeper = subprocess.Popen(hosts.command(1, ["sleep", "600"]), start_new_session=True)
        assert set(hosts.names) <= _namespaces()
        assert sleeper.pid in _wait_for_pid(hosts, 1, sleeper.pid)
    finally:
        hosts.close()
    assert sleeper.wait(timeout=20) == -9
    assert not set(hosts.names) & _namespaces()
    with pytest.raises(netns.NetnsError, match="ip netns pids .* failed"):
        hosts.pids(1)



def test_without_root_or_iproute2_the_reason_is_named(monkeypatch):
    """Bad input: two hosts (tools/netns.py) made without root or without the `ip` command | one line naming what is missing; tests needing them skip with it, or fail under CI=true."""
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root (this process runs as uid 1000)"
    with pytest.raises(netns.NetnsError, match="need root"):
        netns.TwoHosts()
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "_which", lambda tool: None if tool == "ip" else "/usr/bin/" + tool)
    assert netns.unavailable() == "no 'ip' command: install iproute2 (apt-get install iproute2)"
