"""What the loopback benchmarks share: nginx started on 127.0.0.1 with given server blocks,
a free port, and wrk's requests per second."""
import contextlib
import os
import re
import socket
import subprocess
import time

CONNECTIONS = 64

NGINX_CONF = """
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
{servers}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx(tmp, servers):
    """nginx running from directory `tmp` with these `server { ... }` blocks, stopped after."""
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, servers=servers))
    subprocess.run(["nginx", "-c", conf], check=True)
    try:
        time.sleep(0.5)
        yield
    finally:
        subprocess.run(["nginx", "-c", conf, "-s", "stop"])


def wrk(url, seconds, script=None):
    """Requests per second of wrk at CONNECTIONS keep-alive connections (two threads)."""
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], stdout=subprocess.PIPE, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
