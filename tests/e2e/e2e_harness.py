"""Small pieces the e2e scripts share: a free port on 127.0.0.1, and
Debian's etcd started on such ports in a folder of the test's."""
import os
import shutil
import socket
import subprocess
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_etcd(work):
    """Starts etcd with its data and log under `work`; returns (process, "127.0.0.1:PORT")."""
    cport, pport = free_port(), free_port()
    d = os.path.join(work, "etcd")
    shutil.rmtree(d, ignore_errors=True)
    log = open(os.path.join(work, "etcd.log"), "w")
    e = subprocess.Popen(["etcd", "--name", "t", "--data-dir", d, "--listen-client-urls", "http://127.0.0.1:%d" % cport,
                          "--advertise-client-urls", "http://127.0.0.1:%d" % cport, "--listen-peer-urls",
                          "http://127.0.0.1:%d" % pport, "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pport,
                          "--initial-cluster", "t=http://127.0.0.1:%d" % pport], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", cport), timeout=0.2).close()
            return e, "127.0.0.1:%d" % cport
        except OSError:
            if e.poll() is not None:
                break
            time.sleep(0.1)
    e.kill()
    raise RuntimeError("etcd did not start (see %s)" % os.path.join(work, "etcd.log"))
