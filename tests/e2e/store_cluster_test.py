#!/usr/bin/python3
"""The KV store as real processes: `crescent store-master`, `store-node` and
`store-cli`, with etcd (Debian's) started here for the HA part.

  --part basic   objects of 1 B to 64 MiB between nodes, concurrent clients,
                 bad input (each a clear error; the master keeps serving)
  --part faults  kill -9 a node mid-traffic (replicas serve, nobody hangs),
                 kill -9 and restart an SSD node (its records are hits again),
                 a flipped byte in an SSD record (a miss, counted, never wrong)
  --part ha      two masters under etcd: kill -9 the leader, the standby takes
                 over, nodes re-report, every object still reads back right
  --part netns   a client in one network namespace, the store in another,
                 over TCP on a veth pair (root only; fails if it cannot run)

Prints 'N checks passed, M failed' and exits non-zero on any failure.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from e2e_harness import free_port

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--part", required=True, choices=["basic", "faults", "ha", "netns"])
a = ap.parse_args()

passed = failed = 0
procs = []
tmp = tempfile.mkdtemp(prefix="crescent-store-e2e-")


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)



class Proc:
    def __init__(self, argv, name, prefix=()):
        self.log = os.path.join(tmp, name + ".log")
        self.name = name
        self.p = subprocess.Popen(list(prefix) + argv, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        procs.append(self)

    def text(self):
        return open(self.log, errors="replace").read()

    def wait_for(self, pattern, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("%s: no %r within %ss; log:\n%s" % (self.name, pattern, timeout, self.text()[-3000:]))

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout=30)


def crescent(*args, timeout=60, prefix=()):
    t0 = time.time()
    r = subprocess.run(list(prefix) + [a.crescent] + list(args), capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


STORE = ["--master-timeout-ms", "2000", "--transfer-timeout-ms", "1500"]


def master(port, *extra, name="master", lease_ms=2000):
    m = Proc([a.crescent, "store-master", "--listen", "127.0.0.1:%d" % port, "--node-ttl-ms", "3000",
              "--lease-ms", str(lease_ms)] + list(extra), name)
    m.wait_for("store-master: serving")
    return m


def node(master_addr, name, dram="256M", *extra, prefix=()):
    n = Proc([a.crescent, "store-node", "--master", master_addr, "--dram-bytes", dram] + STORE + list(extra), name,
             prefix)
    n.wait_for("store-node: .* contributes")
    return n


def cli(master_addr, *args, timeout=60, prefix=(), store=STORE):
    return crescent("store-cli", "--master", master_addr, *store, *args, timeout=timeout, prefix=prefix)


def put_get(master_addr, key, data, prefix=(), store=STORE):
    src = os.path.join(tmp, "in-" + key)
    dst = os.path.join(tmp, "out-" + key)
    open(src, "wb").write(data)
    r, _ = cli(master_addr, "put", key, src, prefix=prefix, store=store)
    if r.returncode != 0:
        return "put: " + r.stderr.strip()
    r, _ = cli(master_addr, "get", key, dst, prefix=prefix, store=store)
    if r.returncode != 0:
        return "get: " + r.stderr.strip()
    return "ok" if open(dst, "rb").read() == data else "different bytes"


def stat(master_addr):
    r, _ = cli(master_addr, "stat", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def basic():
    port = free_port()
    addr = "127.0.0.1:%d" % port
    master(port, "--replicas", "2")
    node(addr, "node1")
    node(addr, "node2")
    rng = random.Random(1)
    for size in [1, 4095, 4096, (1 << 20) + 7, 8 << 20, 64 << 20]:
        res = put_get(addr, "obj-%d" % size, rng.randbytes(size))
        check(res == "ok", "round trip of %d bytes: %s" % (size, res))
    s = stat(addr)
    check(s is not None and s["nodes"] == 2 and s["objects"] == 6, "stat: %s" % s)
    check(all(seg["objects"] == 6 for seg in s["segments"]), "two replicas of each object on distinct nodes")
    # Concurrent clients, each its own process.
    jobs = []
    for i in range(8):
        data = rng.randbytes(rng.randrange(1, 3 << 20))
        src = os.path.join(tmp, "conc-%d" % i)
        open(src, "wb").write(data)
        jobs.append((i, data, subprocess.Popen([a.crescent, "store-cli", "--master", addr] + STORE +
                                               ["put", "conc-%d" % i, src], stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for i, data, p in jobs:
        p.wait(timeout=60)
        check(p.returncode == 0, "concurrent put %d" % i)
    gets = [(i, data, subprocess.Popen([a.crescent, "store-cli", "--master", addr] + STORE +
                                       ["get", "conc-%d" % i, os.path.join(tmp, "conc-out-%d" % i)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)) for i, data, _ in jobs]
    for i, data, p in gets:
        p.wait(timeout=60)
        check(p.returncode == 0 and open(os.path.join(tmp, "conc-out-%d" % i), "rb").read() == data,
              "concurrent get %d" % i)
    # Bad input: one readable line, a non-zero exit, and the master keeps serving.
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    huge = os.path.join(tmp, "huge")
    with open(huge, "wb") as f:
        f.truncate(300 << 20)
    for args, want in [(("put", "e", empty), "zero-size"), (("put", "h", huge), "does not fit any segment"),
                       (("get", "nope", os.path.join(tmp, "x")), "no such object"), (("rm", "nope"), "no such object"),
                       (("put", "k", os.path.join(tmp, "missing")), "missing")]:
        r, _ = cli(addr, *args)
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        check(r.returncode == 1 and want in first, "%s: exit %d, %r" % (args, r.returncode, first))
    r, secs = cli("127.0.0.1:%d" % free_port(), "exists", "k")
    check(r.returncode == 1 and "unavailable" in r.stderr and secs < 6, "a dead master: %r in %.1fs" % (r.stderr, secs))
    check(stat(addr) is not None, "the master still serves after bad input")


def faults():
    # 1. kill -9 a node mid-traffic; objects have a copy on each node.
    port = free_port()
    addr = "127.0.0.1:%d" % port
    master(port, "--replicas", "2")
    n1 = node(addr, "node1")
    node(addr, "node2")
    rng = random.Random(2)
    objs = {"kill-%d" % i: rng.randbytes(rng.randrange(1000, 4 << 20)) for i in range(10)}
    for k, v in objs.items():
        check(put_get(addr, k, v) == "ok", "put before the kill: " + k)
    n1.kill()
    slowest = 0
    for k, v in objs.items():
        dst = os.path.join(tmp, "after-" + k)
        r, secs = cli(addr, "get", k, dst)
        slowest = max(slowest, secs)
        check(r.returncode == 0 and open(dst, "rb").read() == v, "get after a node died: %s: %s" % (k, r.stderr))
    check(slowest < 10, "a get waited %.1fs on the dead node" % slowest)
    # Puts while the master still counts the dead node end in time (ok or a
    # clear error); after its TTL they succeed again.
    r, secs = cli(addr, "put", "during", os.path.join(tmp, "in-kill-0"))
    check(secs < 12, "a put waited %.1fs on the dead node" % secs)
    time.sleep(3.5)
    check(put_get(addr, "after-ttl", rng.randbytes(1 << 20)) == "ok", "puts work once the dead node expired")
    print("kill -9: %d gets served by the surviving copies, slowest %.2fs" % (len(objs), slowest), flush=True)

    # 2. kill -9 and restart an SSD node; a flipped byte on SSD is caught.
    port = free_port()
    addr = "127.0.0.1:%d" % port
    master(port, name="master-ssd", lease_ms=500)
    ssd = os.path.join(tmp, "ssd")
    n = node(addr, "ssd-node", "24M", "--ssd-dir", ssd, "--ssd-bytes", "256M")
    vals = {"ssd-%d" % i: rng.randbytes(2 << 20) for i in range(20)}
    for k, v in vals.items():
        res = put_get(addr, k, v)
        check(res == "ok", "put on the SSD node: %s: %s" % (k, res))
        time.sleep(0.55)  # past the read lease, so the master may demote it
    deadline = time.time() + 20
    while time.time() < deadline and len([f for f in os.listdir(ssd) if f.endswith(".rec")]) < 5:
        time.sleep(0.2)
    recs = sorted(f for f in os.listdir(ssd) if f.endswith(".rec"))
    check(len(recs) >= 5, "DRAM past its watermark demotes to SSD (%d records)" % len(recs))
    n.kill()
    with open(os.path.join(ssd, recs[0]), "r+b") as f:  # flip one byte of one record's data
        f.seek(4096 + 100)
        b = f.read(1)
        f.seek(4096 + 100)
        f.write(bytes([b[0] ^ 0x20]))
    n = node(addr, "ssd-node-2", "24M", "--ssd-dir", ssd, "--ssd-bytes", "256M")
    found = int(re.search(r"(\d+) records found", n.text()).group(1))
    check(found == len(recs), "the restarted node found its %d SSD records (%d)" % (len(recs), found))
    served = corrupt = 0
    for k, v in vals.items():
        dst = os.path.join(tmp, "ssd-out-" + k)
        r, _ = cli(addr, "get", k, dst)
        if r.returncode == 0:
            check(open(dst, "rb").read() == v, "an SSD object came back with different bytes: " + k)
            served += 1
        elif "checksum" in r.stderr:
            corrupt += 1
    check(served == len(recs) - 1, "SSD objects served again after kill -9 + restart: %d of %d" % (served, len(recs) - 1))
    check(corrupt == 1, "the flipped record is a miss, reported as such (%d)" % corrupt)
    s = stat(addr)
    check(s and s["counters"].get("bad_replicas", 0) >= 1, "the bad copy is counted: %s" % (s and s["counters"]))
    print("SSD restart: %d records found, %d served again, %d corrupt caught" % (found, served, corrupt), flush=True)


def start_etcd():
    cport, pport = free_port(), free_port()
    d = os.path.join(tmp, "etcd")
    e = Proc(["etcd", "--name", "t", "--data-dir", d, "--listen-client-urls", "http://127.0.0.1:%d" % cport,
              "--advertise-client-urls", "http://127.0.0.1:%d" % cport, "--listen-peer-urls",
              "http://127.0.0.1:%d" % pport, "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pport,
              "--initial-cluster", "t=http://127.0.0.1:%d" % pport, "--logger", "zap", "--log-outputs",
              os.path.join(tmp, "etcd-own.log")], "etcd")
    e.wait_for("", 1)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", cport), timeout=0.2).close()
            return "127.0.0.1:%d" % cport
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("etcd did not start")


def ha():
    etcd = start_etcd()
    target = "etcd://" + etcd
    p1, p2 = free_port(), free_port()
    m1 = Proc([a.crescent, "store-master", "--listen", "127.0.0.1:%d" % p1, "--etcd", etcd, "--lease-ttl", "2",
               "--node-ttl-ms", "3000", "--write-grace-ms", "2000"], "master1")
    m1.wait_for("store-master: leader")
    m2 = Proc([a.crescent, "store-master", "--listen", "127.0.0.1:%d" % p2, "--etcd", etcd, "--lease-ttl", "2",
               "--node-ttl-ms", "3000", "--write-grace-ms", "2000"], "master2")
    m2.wait_for("store-master: serving")
    time.sleep(0.5)
    check("leader" not in m2.text().split("serving", 1)[1], "the second master stays standby")
    node(target, "ha-node1")
    node(target, "ha-node2")
    rng = random.Random(3)
    vals = {"ha-%d" % i: rng.randbytes(rng.randrange(1, 3 << 20)) for i in range(12)}
    for k, v in vals.items():
        check(put_get(target, k, v) == "ok", "put before the failover: " + k)
    before = stat(target)
    m1.kill()
    t0 = time.time()
    m2.wait_for("store-master: leader", 15)
    took = time.time() - t0
    # Nodes notice the new term and re-report; every object reads back right.
    ok = 0
    deadline = time.time() + 20
    pending = dict(vals)
    while pending and time.time() < deadline:
        for k in list(pending):
            dst = os.path.join(tmp, "ha-out-" + k)
            r, _ = cli(target, "get", k, dst)
            if r.returncode == 0:
                check(open(dst, "rb").read() == pending[k], "after the failover, different bytes for " + k)
                del pending[k]
                ok += 1
        time.sleep(0.2)
    check(not pending, "objects on live nodes readable after the failover (missing: %s)" % sorted(pending))
    after = stat(target)
    check(after and after["term"] > before["term"], "the new leader serves a higher term")
    check(after and after["objects"] == len(vals), "the index rebuilt from re-reports: %s objects" % (after and after["objects"]))
    # Re-reported segments take no new puts for the write grace (old writes
    # may still land there); then they do.
    new_val, res, t_new = rng.randbytes(5 << 20), None, time.time()
    while time.time() < t_new + 10:
        res = put_get(target, "ha-new", new_val)
        if res == "ok":
            break
        check("grace" in res, "a put right after the failover: " + res)
        time.sleep(0.3)
    check(res == "ok", "puts work under the new leader after the write grace: %s" % res)
    # New puts never land on space an old object holds: all old objects intact.
    for k, v in list(vals.items())[:4]:
        dst = os.path.join(tmp, "ha-again-" + k)
        r, _ = cli(target, "get", k, dst)
        check(r.returncode == 0 and open(dst, "rb").read() == v, "old object intact after new puts: " + k)
    print("failover: standby led after %.1fs; %d objects read back" % (took, ok), flush=True)


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True).returncode == 0


def netns():
    if os.geteuid() != 0:
        check(False, "the namespace test needs root (CI runs as root)")
        return
    tag = "%d" % os.getpid()
    na, nb, va, vb = "cst-a" + tag, "cst-b" + tag, "csa" + tag, "csb" + tag
    ok = sh("ip netns add %s && ip netns add %s" % (na, nb)) and sh(
        "ip link add %s type veth peer name %s" % (va, vb)) and sh(
        "ip link set %s netns %s && ip link set %s netns %s" % (va, na, vb, nb)) and sh(
        "ip -n %s addr add 10.201.%d.1/24 dev %s && ip -n %s addr add 10.201.%d.2/24 dev %s" %
        (na, int(tag) % 250, va, nb, int(tag) % 250, vb)) and sh(
        "ip -n %s link set %s up && ip -n %s link set %s up && ip -n %s link set lo up && ip -n %s link set lo up" %
        (na, va, nb, vb, na, nb))
    try:
        check(ok, "creating two network namespaces and a veth pair")
        if not ok:
            return
        ip_a = "10.201.%d.1" % (int(tag) % 250)
        port = 17000 + int(tag) % 1000
        inns_a, inns_b = ("ip", "netns", "exec", na), ("ip", "netns", "exec", nb)
        m = Proc([a.crescent, "store-master", "--listen", "%s:%d" % (ip_a, port)], "ns-master", inns_a)
        m.wait_for("store-master: serving")
        addr = "%s:%d" % (ip_a, port)
        tcp_a = ["--master-timeout-ms", "3000", "--transfer-timeout-ms", "5000", "--transports", "tcp", "--net-devices", va]
        n = Proc([a.crescent, "store-node", "--master", addr, "--dram-bytes", "128M"] + tcp_a, "ns-node", inns_a)
        n.wait_for("store-node: .* contributes")
        tcp_b = ["--master-timeout-ms", "3000", "--transfer-timeout-ms", "5000", "--transports", "tcp", "--net-devices", vb]
        rng = random.Random(4)
        for size in [1, 65537, 8 << 20]:
            res = put_get(addr, "ns-%d" % size, rng.randbytes(size), prefix=inns_b, store=tcp_b)
            check(res == "ok", "across namespaces over TCP, %d bytes: %s" % (size, res))
    finally:
        for p in procs:
            p.kill()
        sh("ip netns del %s; ip netns del %s" % (na, nb))


try:
    {"basic": basic, "faults": faults, "ha": ha, "netns": netns}[a.part]()
except Exception as e:  # a setup step that could not run is a failure, with its reason
    check(False, "%s: %s" % (type(e).__name__, e))
finally:
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass
    if failed:
        for p in procs:
            print("---- %s (last lines)" % p.name)
            print("\n".join(p.text().splitlines()[-15:]))
    shutil.rmtree(tmp, ignore_errors=True)
print("%d checks passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
