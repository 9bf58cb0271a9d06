#!/usr/bin/env python3
"""The live Conductor on real processes, all started by `crescent cluster up`
(etcd, the store master, 2 prefill + 1 decode instances of the tiny dummy,
the front); docs/cluster.md.

- --part routing: requests sharing a long prefix go where it is cached
  (global-cache), spread to the other prefill instance once the holder is
  busy, which fetches the prefix from the store and keeps it (a replica: it
  then serves the prefix from its own cache); every output equals one
  all-in-one engine's; SIGINT stops everything, and so does a SIGKILL of
  cluster up itself (no orphans).
- --part admission (1 prefill + 1 decode instance): admission is off (log, /metrics) until the estimators
  are fitted from the instances' timings; then, under an overload, requests
  predicted to miss a tight TTFT SLO get 429 (OpenAI error body, Retry-After)
  at once, the admitted ones meet the SLO, and goodput beats the same load
  with admission off (both printed).
- --part faults (2 prefill + 2 decode instances): a load while random
  processes are killed with -9 (prefill, decode, the store master, etcd) and
  cluster up restarts them: zero wrong
  outputs (each equals the all-in-one greedy reference), zero requests past
  their timeout, the rest clean errors; served again after the kills. The
  number of kills is --kills (scripts/soak.sh runs 100).
- --part netns: the same on many "hosts": etcd, the store master, 2 prefill
  and 2 decode instances and the front each in a network namespace of its
  own, on a bridge this test makes (KV over UCX TCP on the veths, control
  over gRPC, the load from the root namespace); processes killed with -9 and
  restarted by the test: zero wrong outputs, zero requests past their timeout.
"""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_harness import ClusterUp, metric, metric_sum, stream, alive  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--part", default="routing", choices=["routing", "admission", "faults", "netns"])
ap.add_argument("--kills", type=int, default=8)
a = ap.parse_args()
os.makedirs(a.work, exist_ok=True)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def words(rng, n, tag):
    return " ".join("%s%d" % (tag, rng.randint(0, 99999)) for _ in range(n))


class Reference:
    """One all-in-one `crescent serve` on the cluster's model: the greedy outputs to compare with."""

    def __init__(self, model, *extra):
        self.log = open(os.path.join(a.work, "reference.log"), "w")
        self.p = subprocess.Popen([a.crescent, "serve", "--model", model, *extra, "--host", "127.0.0.1", "--port", "0",
                                   "--kv-cache-bytes", "256M", "--kv-offload-dram-bytes", "0"],
                                  stdout=self.log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        path = os.path.join(a.work, "reference.log")
        for _ in range(600):
            m = re.search(r"ready in [\d.]+ s on http://127.0.0.1:(\d+)", open(path).read())
            if m:
                self.port = int(m.group(1))
                self.cache = {}
                return
            time.sleep(0.1)
        raise RuntimeError("the reference server did not start")

    def text(self, prompt, max_tokens):
        key = (prompt, max_tokens)
        if key not in self.cache:
            st, text, _, _, err = stream(self.port, prompt, max_tokens, timeout=120)
            assert st == 200, err
            self.cache[key] = text
        return self.cache[key]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(30)


def model_dir(c):
    return re.search(r"cluster: model (\S+),", c.text()).group(1)


def placements(c):
    return metric_sum(c.port, "crescent_conductor_placements_total")[1]


def routing():
    c = ClusterUp(a.crescent, os.path.join(a.work, "routing"), "tiny-llama3", "--prefill", "2", "--decode", "1")
    ref = Reference(model_dir(c))
    rng = random.Random(7)
    prefix = words(rng, 700, "p")  # ~2,100 tokens: 8 store chunks
    results = []

    def ask(suffix):
        prompt = prefix + " " + suffix
        st, text, ttft, _, err = stream(c.port, prompt, 6)
        results.append((prompt, st, text, err))
        return st

    for i in range(4):
        ask(words(rng, 10, "s%d_" % i))
    pl = placements(c)
    check(len(pl) == 1 and sum(pl.values()) == 4,
          "requests sharing a long prefix go where it is cached, one instance: %s" % pl)
    holder = list(pl)[0]

    def burst(n, suffix_words):
        th = [threading.Thread(target=ask, args=(words(rng, suffix_words, "b"),)) for _ in range(n)]
        [t.start() for t in th]
        [t.join() for t in th]

    burst(10, 300)
    pl = placements(c)
    others = {k: v for k, v in pl.items() if k != holder}
    check(len(others) == 1 and sum(others.values()) >= 1,
          "a burst on the hot prefix spreads once its holder is busy: %s" % pl)
    fetches = metric(c.port, "crescent_conductor_fetches_total")
    check(fetches is not None and fetches >= 1, "the other instance fetches the prefix from the store (%s fetches)" % fetches)
    burst(6, 300)
    # Which instance is the other one: the KV address in the placement label -> its HTTP port.
    other_kv = re.search(r'instance="([\d.:]+)"', list(others)[0]).group(1) if others else ""
    text = c.text()
    other_name = next((n for n, kv in re.findall(r"cluster: (\w+-\d+) on http://[\d.]+:\d+ \(KV service ([\d.:]+)",
                                                  text) if kv == other_kv), None)
    own = metric(c.instances[other_name], 'crescent_prefix_cache_tier_hits_tokens{tier="engine"}') if other_name else None
    check(own is not None and own > 0,
          "the hot prefix gained a replica: %s then served it from its own cache (%s tokens)" % (other_name, own))
    time.sleep(0.5)  # the instances' next reports
    reps = metric_sum(c.port, "crescent_conductor_hot_prefix_replicas")[1]
    reqs = metric_sum(c.port, "crescent_conductor_hot_prefix_requests")[1]
    hottest = max(reqs, key=reqs.get).replace("requests", "replicas") if reqs else None
    check(hottest is not None and reps.get(hottest) == 2,
          "/metrics shows the hot prefix with 2 replicas (%s: %s)" % (hottest, reps.get(hottest)))
    bad = [(p[-40:], st, err) for p, st, txt, err in results if st != 200]
    check(not bad, "every request served (%d): %s" % (len(results), bad[:3]))
    wrong = sum(1 for p, st, txt, err in results if st == 200 and txt != ref.text(p, 6))
    check(wrong == 0, "outputs equal one all-in-one engine's whatever the placement (%d wrong of %d)" % (wrong, len(results)))
    resyncs = metric(c.port, "crescent_conductor_view_resyncs_total")
    events = metric(c.port, "crescent_conductor_view_events_total")
    check(events and events > 0, "the view follows the instances' KV events (%s events, %s resyncs)" % (events, resyncs))
    ref.stop()
    kids = c.children()
    check(sorted(kids.values()) == ["decode", "etcd", "front", "prefill", "prefill", "store-master"],
          "cluster up runs etcd, the store master, 2 prefill, 1 decode and the front: %s" % sorted(kids.values()))
    left = c.stop(signal.SIGINT)
    check(not left, "SIGINT stops every process it started (left: %s)" % left)
    # Killed with -9 itself: its children die with it.
    c2 = ClusterUp(a.crescent, os.path.join(a.work, "routing-kill"), "tiny-llama3", "--prefill", "1", "--decode", "1")
    kids = list(c2.children())
    c2.proc.kill()
    c2.proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in kids):
        time.sleep(0.2)
    check(kids and not [p for p in kids if alive(p)], "cluster up killed with -9 leaves no orphans (%d children)" % len(kids))


def overload(c, slo, rate, seconds, prompt_words, rng):
    """Open-loop arrivals at `rate`/s for `seconds`: [(status, ttft, headers, body)]."""
    out, lock, th = [], threading.Lock(), []

    def one(prompt):
        st, _, ttft, headers, body = stream(c.port, prompt, 2, timeout=120)
        with lock:
            out.append((st, ttft, headers, body))

    t0 = time.time()
    n = int(rate * seconds)
    for i in range(n):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(words(rng, prompt_words, "o%d_" % i),))
        t.start()
        th.append(t)
    [t.join() for t in th]
    return out, time.time() - t0


def admission():
    slo = 1.0
    runs = {}
    for mode in ("on", "off"):
        extra = ["--ttft-slo", str(slo)] if mode == "on" else []
        # One prefill instance: on two cores, two would slow each other down
        # by whatever the other runs, which no per-instance estimator sees.
        c = ClusterUp(a.crescent, os.path.join(a.work, "admission-" + mode), "tiny-llama3", "--prefill", "1",
                      "--decode", "1", *extra)
        rng = random.Random(11)
        if mode == "on":
            check(metric(c.port, 'crescent_conductor_admission_enabled{slo="ttft"}') == 0,
                  "admission is off in /metrics before the estimators are fitted")
            check("admission is off until its estimators are fitted" in c.log("front"), "and the log says so")
        # Warm-up: varied lengths, so the prefill estimator is determined.
        t_long = []
        for n in (200, 400, 600, 800, 1000, 400, 600, 600, 600, 600):
            st, _, ttft, _, _ = stream(c.port, words(rng, n, "w"), 2)
            if n == 600 and ttft:
                t_long.append(ttft)
        time.sleep(0.5)  # the next reports carry the last timings
        if mode == "on":
            check(metric(c.port, 'crescent_conductor_admission_enabled{slo="ttft"}') == 1,
                  "admission turns on once the prefill estimator is fitted from the instances' timings")
        t1 = sorted(t_long)[len(t_long) // 2]
        # ~3x what the prefill instance does (at most 12/s: the client's threads share the cores).
        rate = runs["on"]["rate"] if "on" in runs else min(12.0, max(2.0, 3.0 / t1))
        out, wall = overload(c, slo, rate, 12, 600, rng)
        ok = [t for st, t, h, b in out if st == 200 and t is not None]
        good = sum(1 for t in ok if t <= slo)
        rejected = [(h, b) for st, t, h, b in out if st == 429]
        runs[mode] = {"rate": rate, "sent": len(out), "served": len(ok), "good": good, "rejected": len(rejected),
                      "goodput": good / wall, "p90": sorted(ok)[int(0.9 * (len(ok) - 1))] if ok else None,
                      "other": [st for st, t, h, b in out if st not in (200, 429)]}
        r = runs[mode]
        print("admission %s: %.1f req/s for 12 s (one 600-word prompt alone: TTFT %.2f s): %d sent, %d served "
              "(%d within the %.1f s SLO, p90 TTFT %s s), %d refused with 429; goodput %.2f req/s"
              % (mode, rate, t1, r["sent"], r["served"], good, slo, "%.2f" % r["p90"] if r["p90"] else "-",
                 r["rejected"], r["goodput"]), flush=True)
        check(not r["other"], "admission %s: every request answered 200 or 429 (others: %s)" % (mode, r["other"][:5]))
        if mode == "on":
            check(r["rejected"] > 0, "an overload gets 429s before any work")
            h, b = rejected[0] if rejected else ({}, "")
            check('"type":"rate_limit_error"' in (b or "") and "Retry-After" in h,
                  "a 429 has an OpenAI error body and a Retry-After header (%s, %s)" % (b, h.get("Retry-After")))
            check(r["served"] > 0 and r["good"] >= 0.9 * r["served"],
                  "the admitted requests meet the SLO (%d of %d)" % (r["good"], r["served"]))
        left = c.stop()
        check(not left, "stopped cleanly")
    check(runs["on"]["goodput"] > runs["off"]["goodput"],
          "goodput with admission %.2f req/s > without %.2f req/s" % (runs["on"]["goodput"], runs["off"]["goodput"]))


def run_faults(host, port, ref, victims, restart=None):
    """4 clients in a loop over 24 prompts sharing 3 prefixes while a process
    is killed with -9 every 3 s (victims(): {pid: kind}; restart(kind), if
    given, starts it again a second later); then the checks."""
    rng = random.Random(5)
    prefixes = [words(rng, 300, "f%d_" % i) for i in range(3)]
    prompts = [prefixes[i % 3] + " " + words(rng, 20, "q") for i in range(24)]
    for p in prompts:
        ref.text(p, 8)
    stop = threading.Event()
    outcomes, lock = [], threading.Lock()
    timeout = 60

    def client(k):
        r = random.Random(k)
        while not stop.is_set():
            p = r.choice(prompts)
            t0 = time.time()
            st, text, _, _, err = stream(port, p, 8, timeout=timeout, host=host)
            with lock:
                outcomes.append((st, st == 200 and text != ref.text(p, 8), time.time() - t0, err))
            if st != 200:
                time.sleep(0.2)  # as a client backs off after an error

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    kinds = ["prefill", "prefill", "decode", "store-master", "etcd"]
    killed = []
    for i in range(a.kills):
        time.sleep(3)
        kids = victims()
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        pids = [p for p, n in kids.items() if n == kind]
        if not pids:
            continue
        pid = rng.choice(pids)
        os.kill(pid, signal.SIGKILL)
        killed.append(kind)
        if restart:
            restart(pid)
    time.sleep(3)
    stop.set()
    [t.join() for t in threads]
    # After the kills: every process is back and serving.
    deadline = time.time() + 60
    back = False
    while time.time() < deadline and not back:
        st, text, _, _, _ = stream(port, prompts[0], 8, host=host)
        back = st == 200 and text == ref.text(prompts[0], 8)
        if not back:
            time.sleep(1)
    n = len(outcomes)
    served = sum(1 for o in outcomes if o[0] == 200)
    wrong = sum(1 for o in outcomes if o[1])
    hung = sum(1 for o in outcomes if o[0] == -2)
    errors = {}
    for o in outcomes:
        if o[0] != 200:
            errors[o[0]] = errors.get(o[0], 0) + 1
    print("faults (%s): %d kills (%s); %d requests: %d served, %d wrong, %d hung, errors by status %s"
          % (a.part, len(killed), ",".join(killed), n, served, wrong, hung, errors), flush=True)
    check(len(killed) == a.kills, "%d processes killed with -9" % len(killed))
    check(wrong == 0, "zero wrong outputs under kills (%d served)" % served)
    check(hung == 0, "zero requests past their %d s timeout" % timeout)
    check(served > 0, "requests are served between the kills")
    check(back, "the cluster serves the reference output again after the kills")
    return len(killed)


def faults():
    c = ClusterUp(a.crescent, os.path.join(a.work, "faults"), "tiny-llama3", "--prefill", "2", "--decode", "2",
                  "--instance-timeout-ms", "2000")
    ref = Reference(model_dir(c))
    killed = run_faults("127.0.0.1", c.port, ref, c.children)
    restarts = len(re.findall(r"restarted \(pid", c.text()))
    check(restarts >= killed, "cluster up restarted every killed process (%d restarts)" % restarts)
    ref.stop()
    left = c.stop()
    check(not left, "SIGINT stops everything, restarted processes included (left: %s)" % left)


def sh(*cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


class Proc:
    """A process in a namespace, restartable with the same command."""

    def __init__(self, name, ns, argv):
        self.name, self.ns, self.argv = name, ns, argv
        self.path = os.path.join(a.work, "netns", name + ".log")
        self.p = None
        self.start(False)

    def start(self, append=True):
        log = open(self.path, "a" if append else "w")
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns, *self.argv], stdout=log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))

    def wait_for(self, pattern, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if re.search(pattern, open(self.path).read()):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.1)
        return False


def netns():
    check(os.geteuid() == 0, "network namespaces need root: run the tests as root")
    os.makedirs(os.path.join(a.work, "netns"), exist_ok=True)
    tag = str(os.getpid() % 10000)
    net = "10.215.%d" % (1 + os.getpid() % 250)
    br = "crb" + tag
    names = ["etcd", "master", "p0", "p1", "d0", "d1", "front"]
    ns = {n: "crc%s%s" % (tag, n) for n in names}
    ip = {n: "%s.%d" % (net, i + 1) for i, n in enumerate(names)}
    made = sh("ip", "link", "add", br, "type", "bridge") and sh("ip", "addr", "add", net + ".254/24", "dev", br)
    made = made and sh("ip", "link", "set", br, "up")
    for i, n in enumerate(names):
        host, peer = "cv%s%da" % (tag, i), "cv%s%db" % (tag, i)
        made = made and sh("ip", "netns", "add", ns[n]) and sh("ip", "link", "add", host, "type", "veth", "peer",
                                                                 "name", peer)
        made = made and sh("ip", "link", "set", host, "master", br) and sh("ip", "link", "set", host, "up")
        made = made and sh("ip", "link", "set", peer, "netns", ns[n])
        made = made and sh("ip", "-n", ns[n], "addr", "add", ip[n] + "/24", "dev", peer)
        made = made and sh("ip", "-n", ns[n], "link", "set", peer, "up") and sh("ip", "-n", ns[n], "link", "set", "lo",
                                                                                  "up")
    dev = {n: "cv%s%db" % (tag, i) for i, n in enumerate(names)}

    def cleanup():
        for n in names:
            sh("ip", "netns", "del", ns[n])
        sh("ip", "link", "del", br)

    import atexit
    atexit.register(cleanup)
    check(made, "a bridge and 7 network namespaces, one per process")
    if not made:
        return
    # The model, written once by the reference server (a dummy of its own folder).
    model = os.path.join(a.work, "netns-model")
    ref = Reference("dummy:tiny-llama3", "--dummy-dir", model)
    etcd = ip["etcd"] + ":2379"
    master = ip["master"] + ":7070"
    procs = {}
    procs["etcd"] = Proc("etcd", ns["etcd"], ["etcd", "--name", "n", "--data-dir", os.path.join(a.work, "netns",
                         "etcd-data"), "--listen-client-urls", "http://" + etcd, "--advertise-client-urls",
                         "http://" + etcd, "--listen-peer-urls", "http://%s:2380" % ip["etcd"],
                         "--initial-advertise-peer-urls", "http://%s:2380" % ip["etcd"], "--initial-cluster",
                         "n=http://%s:2380" % ip["etcd"]])
    procs["master"] = Proc("master", ns["master"], [a.crescent, "store-master", "--listen", master])
    check(procs["master"].wait_for("store-master: serving", 30), "the store master serves in its namespace")
    for n in ("p0", "p1", "d0", "d1"):
        role = "prefill" if n[0] == "p" else "decode"
        procs[n] = Proc(n, ns[n], [a.crescent, "serve", "--model", model, "--role", role, "--host", ip[n],
                                   "--port", "8101", "--instance-listen", ip[n] + ":9101", "--etcd", etcd,
                                   "--store-master", master, "--kv-offload-dram-bytes",
                                   "64M" if role == "prefill" else "0", "--kv-cache-bytes", "256M", "--kv-transports",
                                   "tcp", "--kv-net-devices", dev[n]])
    for n in ("p0", "p1", "d0", "d1"):
        check(procs[n].wait_for(r"ready in [\d.]+ s", 120), "%s serves in its namespace" % n)
    procs["front"] = Proc("front", ns["front"], [a.crescent, "conductor", "--model", model, "--host",
                                                 ip["front"], "--port", "8000", "--etcd", etcd, "--store-master",
                                                 master, "--instance-timeout-ms", "2000"])
    check(procs["front"].wait_for(r"ready in [\d.]+ s", 60), "the front serves in its namespace")
    time.sleep(3)  # it finds the four instances in etcd
    kind = {"etcd": "etcd", "master": "store-master", "p0": "prefill", "p1": "prefill", "d0": "decode",
            "d1": "decode", "front": "front"}

    def victims():
        return {pr.p.pid: kind[n] for n, pr in procs.items() if pr.p.poll() is None and n != "front"}

    def restart(pid):  # as a supervisor on each host would, a second later
        pr = next(pr for pr in procs.values() if pr.p.pid == pid)
        pr.p.wait()
        threading.Timer(1.0, pr.start).start()

    run_faults(ip["front"], 8000, ref, victims, restart)
    time.sleep(1.5)
    for pr in procs.values():
        if pr.p.poll() is None:
            pr.p.kill()
            pr.p.wait()
    ref.stop()


{"routing": routing, "admission": admission, "faults": faults, "netns": netns}[a.part]()
print("cluster %s: %d failure(s)" % (a.part, len(failures)), flush=True)
sys.exit(1 if failures else 0)
