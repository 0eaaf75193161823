"""Shared fixtures and helpers for the procq Python test suite.

Every blocking call in the suite has a timeout, and pytest-timeout (when
installed, as scripts/test.d/20-python.sh does) stops any test that still
hangs. Worker functions live in ``workers.py`` so that ``spawn`` and
``forkserver`` children can import them.
"""

import gc
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

SHM = "/dev/shm"


def own_segments():
    """Segments of queues this test process created (procq's default names
    embed the creator's pid in hex; tests that name queues use ``tname``)."""
    pid = os.getpid()
    marks = (f"procq-q-{pid:x}-", f"procq-pytest-{pid}-")
    try:
        names = os.listdir(SHM)
    except FileNotFoundError:
        return set()
    return {n for n in names if n.startswith(marks)}


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Fail a test that leaves a queue's shared memory behind."""
    before = own_segments()
    yield
    gc.collect()
    deadline = time.monotonic() + 3
    while own_segments() - before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    leaked = own_segments() - before
    assert not leaked, f"shared memory left behind: {sorted(leaked)}"


_counter = 0


def tname(label):
    """A queue name unique to this test run."""
    global _counter
    _counter += 1
    return f"pytest-{os.getpid()}-{label}-{_counter}"


def run_all(procs, timeout=30.0):
    """Start ``procs``, wait for all of them (at most ``timeout`` seconds in
    total), kill any that hang, and assert that every one exited with 0."""
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join(5)
    assert not hung, f"processes hung: {hung}"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def race_to_create(name, n=6):
    """Starts ``n`` processes that all create the queue ``name`` with
    ``create_new=True`` at once (``workers.create_exclusive``); returns what
    each said, "created" or "exists", once all have exited."""
    import procq
    import workers

    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Barrier(n, timeout=10), ctx.Event()
    results = procq.Queue()
    procs = [ctx.Process(target=workers.create_exclusive, args=(name, start, results, done))
             for _ in range(n)]
    for p in procs:
        p.start()
    try:
        said = [results.get(timeout=30) for _ in range(n)]
    finally:
        done.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
    assert [p.exitcode for p in procs] == [0] * n
    return said


START_METHODS = ["fork", "spawn"]
ALL_START_METHODS = [
    m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
]


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context for each start method the suite covers."""
    return multiprocessing.get_context(request.param)


# --- a private redis-server ---------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def base():
    """``redis://127.0.0.1:PORT/0`` of a private server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/test.d/20-python.sh installs it)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="procq-py-redis-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _ping(port):
        assert server.poll() is None, "redis-server exited at start"
        assert time.monotonic() < deadline, "redis-server did not answer PING"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


# --- a private TLS-only redis-server -------------------------------------------

def _tls_ping(port, ca):
    import ssl
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def tls_base():
    """``rediss://127.0.0.1:PORT/0`` of a private TLS-only server, with a
    throwaway CA (made with the ``openssl`` command) that this process and
    its children trust through ``SSL_CERT_FILE``."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/test.d/20-python.sh installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (scripts/test.d/20-python.sh installs it)")
    workdir = tempfile.mkdtemp(prefix="procq-py-redis-tls-")
    p = lambda name: os.path.join(workdir, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["req", "-x509", *ec, "-days", "2", "-subj", "/CN=procq test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", p("ca.key"), "-out", p("ca.crt")],
        ["req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", p("server.key"), "-out", p("server.csr")],
        ["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
         "-set_serial", "1", "-days", "2", "-extfile", p("server.ext"), "-out", p("server.crt")],
    ):
        subprocess.run(["openssl", *cmd], check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--tls-cert-file", p("server.crt"),
         "--tls-key-file", p("server.key"), "--tls-ca-cert-file", p("ca.crt"),
         "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = p("ca.crt")
    try:
        deadline = time.monotonic() + 10
        while not _tls_ping(port, p("ca.crt")):
            assert server.poll() is None, "redis-server (TLS) exited at start: built without TLS?"
            assert time.monotonic() < deadline, "the TLS redis-server did not answer PING"
            time.sleep(0.05)
        yield f"rediss://127.0.0.1:{port}/0"
    finally:
        if old is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


# --- a private 3-master Redis Cluster -------------------------------------------

def _cluster_ok(port):
    try:
        out = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "cluster_state:ok" in out


@pytest.fixture(scope="session")
def cluster_base():
    """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`` of a
    private 3-master cluster without persistence."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (scripts/test.d/20-python.sh installs it)")
    workdir = tempfile.mkdtemp(prefix="procq-py-redis-cluster-")
    # Six distinct free ports (held together while picked); the cluster bus
    # defaults to port + 10000, which may not exist.
    held = [socket.socket() for _ in range(6)]
    for h in held:
        h.bind(("127.0.0.1", 0))
    picked = [h.getsockname()[1] for h in held]
    for h in held:
        h.close()
    ports, bus_ports = picked[:3], picked[3:]
    servers = []
    try:
        for port, bus in zip(ports, bus_ports):
            servers.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus),
                 "--cluster-config-file", os.path.join(workdir, f"nodes-{port}.conf"),
                 "--dir", workdir],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ))
        deadline = time.monotonic() + 10
        for port, server in zip(ports, servers):
            while not _ping(port):
                assert server.poll() is None, "redis-server (cluster node) exited at start"
                assert time.monotonic() < deadline, "a cluster node did not answer PING"
                time.sleep(0.05)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while not all(_cluster_ok(p) for p in ports):
            assert time.monotonic() < deadline, "the cluster did not become ok"
            time.sleep(0.1)
        yield "redis+cluster://" + ",".join(nodes)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
