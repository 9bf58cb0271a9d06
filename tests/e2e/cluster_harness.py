"""`crescent cluster up` as the e2e tests drive it: start it, read the URLs
and pids it prints, stream requests (TTFT measured), read /metrics, find
its children, stop it and check that nothing it started is left."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class ClusterUp:
    def __init__(self, crescent, work, model="tiny-llama3", *extra, env=None):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.out_path = os.path.join(work, "cluster-up.out")
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen([crescent, "cluster", "up", "--model", "dummy:" + model, "--dummy-dir",
                                      os.path.join(work, "..", "cluster-model-" + model), "--port", "0",
                                      "--work-dir", os.path.join(work, "logs"), *extra],
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {})))
        deadline = time.time() + 240
        while time.time() < deadline:
            text = self.text()
            m = re.search(r"ready: http://[\d.]+:(\d+)/v1", text)
            if m:
                self.port = int(m.group(1))
                self.instances = {n: int(p) for n, p in re.findall(r"cluster: (\w+-\d+) on http://[\d.]+:(\d+)", text)}
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("cluster up did not start:\n" + self.text()[-4000:])

    def text(self):
        return open(self.out_path).read()

    def log(self, name):
        return open(os.path.join(self.work, "logs", name + ".log")).read()

    def children(self):
        """{pid: name} of the processes cluster up started that run now."""
        out = {}
        for pid in descendants(self.proc.pid):
            try:
                cmd = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
            except OSError:
                continue
            words = [w.decode(errors="replace") for w in cmd if w]
            if not words:
                continue
            if os.path.basename(words[0]) == "etcd":
                out[pid] = "etcd"
            elif "store-master" in words:
                out[pid] = "store-master"
            elif "conductor" in words:
                out[pid] = "front"
            elif "--role" in words:
                out[pid] = words[words.index("--role") + 1]
        return out

    def stop(self, sig=signal.SIGINT, timeout=60):
        """Stops cluster up; returns the pids of its children still alive after it exited."""
        kids = list(self.children())
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.5)
        return [p for p in kids if alive(p)]


def descendants(pid):
    kids, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                c = [int(x) for x in f.read().split()]
        except OSError:
            c = []
        kids += c
        todo += c
    return kids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def metrics(port):
    return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()


def metric(port, series):
    m = re.search(r"^%s (\S+)$" % re.escape(series), metrics(port), re.M)
    return float(m.group(1)) if m else None


def metric_sum(port, name):
    """Sum of every series of `name` (any labels), and the series."""
    series = {k: float(v) for k, v in re.findall(r"^(%s(?:\{[^}]*\})?) (\S+)$" % re.escape(name), metrics(port), re.M)}
    return sum(series.values()), series


def stream(port, prompt, max_tokens=4, timeout=60, host="127.0.0.1"):
    """A greedy streamed completion: (status, text, ttft seconds or None, headers, body on error)."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    req = urllib.request.Request("http://%s:%d/v1/completions" % (host, port), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text, ttft = "", None
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                j = json.loads(line[6:])
                if "error" in j:
                    return 500, text, ttft, dict(r.headers), line
                piece = j["choices"][0].get("text")
                if piece and ttft is None:
                    ttft = time.time() - t0
                text += piece or ""
            return 200, text, ttft, dict(r.headers), None
    except urllib.error.HTTPError as e:
        return e.code, "", None, dict(e.headers), e.read().decode()
    except (TimeoutError, socket.timeout) as e:  # the client's timeout: a hung request
        return -2, "", None, {}, repr(e)
    except Exception as e:  # a connection cut (a killed front)
        return -1, "", None, {}, repr(e)
