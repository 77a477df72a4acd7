"""Write the shell commands that start rank-table (HCCL) distributed training on this Ascend server.

    python get_distribute_train_cmd.py --hccl_config_path=hccl_8p.json --mindrecord_dir=/data/mr \
        [--load_checkpoint_path=...] [--output_dir=.] [--cmd_file=distributed_cmd.sh] [-- --key=value ...]

Reads an HCCL rank table (json, version 1.0 ``server_list`` layout or the older
``group_list`` one) and hyper_parameter_config.ini, then writes a bash script that, for each
device of this server in the table, exports RANK_TABLE_FILE, RANK_SIZE, RANK_ID and
DEVICE_ID, binds the process to its share of the CPU cores with taskset and starts train.py
in <output_dir>/LOG<rank>/ (log: training_log.txt, checkpoints: ckpt_<rank>/). The script
then watches the processes: when one fails it stops the others and exits non-zero.
train.py is given the COCO recipe (``--config_path=coco_recipe_config.yaml``), then the ini's
options, then the arguments after a lone ``--``; later ones win.
"""
import argparse
import configparser
import datetime
import json
import os
import re
import shlex
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RECIPE_CONFIG = os.path.join(REPO, "coco_recipe_config.yaml")


class LauncherError(ValueError):
    """A rank table, ini file or option that cannot produce a valid launch."""


def _int(value, what):
    try:
        return int(str(value).strip())
    except ValueError as err:
        raise LauncherError("%s must be an integer, got %r" % (what, value)) from err


def read_rank_table(path):
    """{'rank_size': N, 'servers': [{'server_id': str, 'devices': [{'device_id', 'rank_id', 'device_ip'}]}]}."""
    if not os.path.isfile(path):
        raise LauncherError("rank table not found: %s" % path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            table = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise LauncherError("rank table %s is not valid JSON: %s" % (path, err)) from err
    if not isinstance(table, dict):
        raise LauncherError("rank table %s must hold a JSON object" % path)
    if "status" in table and table["status"] != "completed":
        raise LauncherError("rank table %s has status %r, not 'completed'" % (path, table["status"]))
    try:
        if "server_list" in table:
            servers = [{"server_id": str(s["server_id"]),
                        "devices": [{"device_id": _int(d["device_id"], "device_id"),
                                     "rank_id": _int(d["rank_id"], "rank_id"),
                                     "device_ip": str(d.get("device_ip", ""))} for d in s["device"]]}
                       for s in table["server_list"]]
        elif "group_list" in table:
            servers = []
            for group in table["group_list"]:
                for inst in group["instance_list"]:
                    servers.append({"server_id": str(inst["server_id"]),
                                    "devices": [{"device_id": _int(d["device_id"], "device_id"),
                                                 "rank_id": _int(inst["rank_id"], "rank_id"),
                                                 "device_ip": str(d.get("device_ip", ""))}
                                                for d in inst["devices"]]})
            servers = _merge_servers(servers)
        else:
            raise LauncherError("rank table %s has neither 'server_list' (version 1.0) nor 'group_list'" % path)
    except (KeyError, TypeError) as err:
        raise LauncherError("rank table %s: an entry lacks the field %s" % (path, err)) from err
    devices = [d for s in servers for d in s["devices"]]
    if not devices:
        raise LauncherError("rank table %s names no device" % path)
    ranks = sorted(d["rank_id"] for d in devices)
    if ranks != list(range(len(devices))):
        raise LauncherError("rank table %s: rank ids must be 0..%d, each once; got %s"
                            % (path, len(devices) - 1, ranks))
    for server in servers:
        ids = [d["device_id"] for d in server["devices"]]
        if len(set(ids)) != len(ids) or min(ids) < 0:
            raise LauncherError("rank table %s: server %s lists device ids %s (each must appear once, >= 0)"
                                % (path, server["server_id"], ids))
    ids = [s["server_id"] for s in servers]
    if len(set(ids)) != len(ids):
        raise LauncherError("rank table %s lists a server twice: %s" % (path, ids))
    return {"rank_size": len(devices), "servers": servers}


def _merge_servers(servers):
    merged = {}
    for server in servers:
        merged.setdefault(server["server_id"], []).extend(server["devices"])
    return [{"server_id": k, "devices": v} for k, v in merged.items()]


def local_addresses():
    names = {socket.gethostname(), "127.0.0.1", "localhost"}
    try:
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return names


def pick_server(table, server_id, path):
    servers = table["servers"]
    if server_id:
        for server in servers:
            if server["server_id"] == server_id:
                return server
        raise LauncherError("server %s is not in rank table %s (servers: %s)"
                            % (server_id, path, ", ".join(s["server_id"] for s in servers)))
    if len(servers) == 1:
        return servers[0]
    mine = [s for s in servers if s["server_id"] in local_addresses()]
    if len(mine) != 1:
        raise LauncherError("rank table %s lists %d servers and none matches this host's addresses: give "
                            "--server_id" % (path, len(servers)))
    return mine[0]


def detect_device_count():
    """Ascend devices of this host (/dev/davinci<N>), 0 when none."""
    try:
        return len([n for n in os.listdir("/dev") if re.fullmatch(r"davinci\d+", n)])
    except OSError:
        return 0


def check_devices(server, device_count, path):
    ids = sorted(d["device_id"] for d in server["devices"])
    if device_count <= 0:
        raise LauncherError("no Ascend device found on this host (/dev/davinci*): rank table %s needs %d; give "
                            "--device_count to generate the commands anyway" % (path, len(ids)))
    if len(ids) > device_count or ids[-1] >= device_count:
        raise LauncherError("rank table %s names %d devices on server %s (device ids %s) but this host has %d "
                            "(ids 0..%d)" % (path, len(ids), server["server_id"], ids, device_count,
                                             device_count - 1))


def read_hyper_parameters(path):
    """[(key, value)] of the ini's [config] section, keys checked against default_config.yaml."""
    if not os.path.isfile(path):
        raise LauncherError("hyper-parameter file not found: %s" % path)
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    parser.optionxform = str  # keep the case of keys (train_config.Adam...)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as err:
        raise LauncherError("cannot parse %s: %s" % (path, err)) from err
    if not parser.has_section("config"):
        raise LauncherError("%s needs a [config] section" % path)
    items = list(parser.items("config"))
    sys.path.insert(0, REPO)
    from src.model_utils.config import ConfigError, get_config  # noqa: E402  (yaml only, no MindSpore)
    try:
        get_config(["--config_path=%s" % RECIPE_CONFIG] + ["--%s=%s" % (k, v) for k, v in items])
    except ConfigError as err:
        raise LauncherError("%s: %s" % (path, err)) from err
    reserved = {"distribute", "device_target", "device_id", "mindrecord_dir", "load_checkpoint_path",
                "save_checkpoint_path"}
    clash = [k for k, _ in items if k in reserved]
    if clash:
        raise LauncherError("%s sets %s, which the launcher sets itself" % (path, ", ".join(clash)))
    return items


def core_ranges(num_local, cpu_count):
    """taskset core list per local device ('' when there are fewer cores than devices)."""
    per = cpu_count // num_local if num_local else 0
    if per == 0:
        return [""] * num_local
    return ["%d-%d" % (i * per, (i + 1) * per - 1) for i in range(num_local)]


def build_commands(args, train_args):
    table_path = os.path.abspath(args.hccl_config_path)
    table = read_rank_table(table_path)
    server = pick_server(table, args.server_id, table_path)
    device_count = args.device_count if args.device_count is not None else detect_device_count()
    check_devices(server, device_count, table_path)
    params = read_hyper_parameters(os.path.abspath(args.hyper_parameter_config_path))
    run_script = os.path.abspath(args.run_script_path)
    if not os.path.isfile(run_script):
        raise LauncherError("training script not found: %s" % run_script)
    mindrecord_dir = os.path.abspath(args.mindrecord_dir)
    load = os.path.abspath(args.load_checkpoint_path) if args.load_checkpoint_path else ""
    out = os.path.abspath(args.output_dir)
    devices = sorted(server["devices"], key=lambda d: d["device_id"])
    cores = core_ranges(len(devices), args.cpu_count or os.cpu_count() or 1)
    q = shlex.quote
    lines = ["#!/bin/bash",
             "# Generated by get_distribute_train_cmd.py on %s from %s:" % (
                 datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), table_path),
             "# %d ranks in all, %d on server %s. Starts one train.py per device in the background, then"
             % (table["rank_size"], len(devices), server["server_id"]),
             "# watches them: when one fails the others are stopped and this script exits 1.",
             "export RANK_TABLE_FILE=%s" % q(table_path),
             "export RANK_SIZE=%d" % table["rank_size"],
             "export HCCL_CONNECT_TIMEOUT=%d" % args.hccl_time_out,
             "pids=()",
             "ranks=()",
             ""]
    for device, core in zip(devices, cores):
        rank, dev = device["rank_id"], device["device_id"]
        log_dir = os.path.join(out, "LOG%d" % rank)
        cmd = ["env", "RANK_ID=%d" % rank, "DEVICE_ID=%d" % dev]
        if core:
            cmd += ["taskset", "-c", core]
        cmd += [args.python, run_script, "--distribute=true", "--device_target=Ascend",
                "--device_num=%d" % table["rank_size"], "--mindrecord_dir=%s" % mindrecord_dir,
                "--load_checkpoint_path=%s" % load, "--save_checkpoint_path=%s" % log_dir,
                "--config_path=%s" % RECIPE_CONFIG]
        cmd += ["--%s=%s" % (k, v) for k, v in params] + list(train_args)
        log = os.path.join(log_dir, "training_log.txt")
        lines += ["# rank %d: device %d%s" % (rank, dev, ", cores %s" % core if core else ", no core binding"),
                  "mkdir -p %s" % q(log_dir),
                  "(cd %s && exec %s > %s 2>&1) &" % (q(log_dir), " ".join(q(c) for c in cmd), q(log)),
                  "pids+=($!)",
                  "ranks+=(%d)" % rank,
                  'echo "rank %d (device %d): pid $!, log %s"' % (rank, dev, log),
                  ""]
    lines += MONITOR.strip("\n").split("\n")
    return "\n".join(lines) + "\n", len(devices)


MONITOR = r'''
status=0
running=${#pids[@]}
while [ "$running" -gt 0 ]; do
    for i in "${!pids[@]}"; do
        pid=${pids[$i]}
        [ -n "$pid" ] || continue
        kill -0 "$pid" 2>/dev/null && continue
        wait "$pid"
        code=$?
        pids[$i]=""
        running=$((running - 1))
        if [ "$code" -ne 0 ]; then
            echo "error: rank ${ranks[$i]} exited with status $code (log: LOG${ranks[$i]}/training_log.txt);" \
                "stopping the other ranks" >&2
            status=1
        fi
    done
    if [ "$status" -ne 0 ] && [ "$running" -gt 0 ]; then
        for pid in "${pids[@]}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
        for _ in $(seq 30); do
            alive=0
            for pid in "${pids[@]}"; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done
            [ "$alive" -eq 0 ] && break
            sleep 1
        done
        for pid in "${pids[@]}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; done
        break
    fi
    sleep 2
done
if [ "$status" -eq 0 ]; then
    echo "all ranks finished"
fi
exit $status
'''


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hccl_config_path", required=True, help="HCCL rank table (json)")
    parser.add_argument("--mindrecord_dir", required=True, help="folder of the MindRecord training files")
    parser.add_argument("--load_checkpoint_path", default="", help="checkpoint to start from (default: none)")
    parser.add_argument("--run_script_path", default=os.path.join(REPO, "train.py"))
    parser.add_argument("--hyper_parameter_config_path", default=os.path.join(HERE, "hyper_parameter_config.ini"))
    parser.add_argument("--output_dir", default=".", help="parent of the LOG<rank> folders")
    parser.add_argument("--cmd_file", default="", help="script to write (default <output_dir>/distributed_cmd.sh)")
    parser.add_argument("--server_id", default="", help="this server in the rank table (default: the only one, "
                                                        "or the one with this host's address)")
    parser.add_argument("--device_count", type=int, default=None,
                        help="Ascend devices on this host (default: counted in /dev/davinci*)")
    parser.add_argument("--cpu_count", type=int, default=0, help="cores shared out for binding (default: all)")
    parser.add_argument("--hccl_time_out", type=int, default=600, help="HCCL_CONNECT_TIMEOUT in seconds")
    parser.add_argument("--python", default="python", help="interpreter started for each device")
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1:]
    else:
        train_args = []
    bad = [a for a in train_args if not a.startswith("--")]
    if bad:
        parser.error("arguments for train.py must look like --key=value, got %s" % bad)
    return parser.parse_args(argv), train_args


def main(argv=None):
    args, train_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        text, count = build_commands(args, train_args)
        cmd_file = args.cmd_file or os.path.join(args.output_dir, "distributed_cmd.sh")
        os.makedirs(os.path.dirname(os.path.abspath(cmd_file)), exist_ok=True)
        with open(cmd_file, "w", encoding="utf-8") as f:
            f.write(text)
    except (LauncherError, OSError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    print("wrote %s: %d processes on this server" % (os.path.abspath(cmd_file), count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
