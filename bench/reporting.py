"""The benchmarks of the reporting: ci-reporter's live log, event stream, API pages,
open streams and catch-up, and the live log's reach through `cictl log --follow`.
Each function takes the suite's context, table and details, as in bench.py."""

import http.client
import json
import os
import re
import selectors
import statistics
import subprocess
import threading
import time

import bench as core
from bench import BenchError, MiB, percentile

# The test command of the `log` benchmark: prints each line read from a FIFO with the
# wall-clock time it printed it, until a line "end".
ECHO_SCRIPT = """import sys, time
for line in open(sys.argv[1]):
    line = line.strip()
    if line == "end":
        break
    print(line, time.time_ns(), flush=True)
"""


def start_reporter(c, *extra, log_name="reporter.log"):
    """A ci-reporter following the cluster's dispatcher, its read model in the cluster's
    folder, HTTP on a free loopback port; returns (daemon, port)."""
    r = core.Daemon("reporter", [
        c.bin("ci-reporter"), "--dispatcher-server", f"127.0.0.1:{c.dispatcher_port}",
        "--db", os.path.join(c.dir, "reporter.db"), "--http", "127.0.0.1:0", *extra],
        os.path.join(c.dir, log_name))
    c.daemons.append(r)
    return r, r.wait_port()


class Http:
    """One keep-alive HTTP/1.1 connection to the reporter (reopened if it closes)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path, headers=None):
        """(status, headers, body, seconds) of one GET."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t0 = time.monotonic()
            try:
                self.conn.request("GET", path, headers=headers or {})
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            seconds = time.monotonic() - t0
            if resp.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return resp.status, dict(resp.getheaders()), body, seconds

    def json(self, path):
        status, _, body, _ = self.get(path)
        if status != 200:
            raise BenchError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def close(self):
        if self.conn:
            self.conn.close()


def metrics(port):
    """The reporter's /metrics as {name{labels}: value}."""
    status, _, body, _ = Http(port).get("/metrics")
    if status != 200:
        raise BenchError(f"GET /metrics: {status}")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def finished_jobs(m):
    return sum(v for k, v in m.items() if k.startswith("tinyci_jobs_finished{"))


def wait_caught_up(port, finished, timeout, step=0.01):
    """Waits until the reporter's read model holds `finished` finished jobs and it has
    applied every feed event it was told of; returns the moment it did."""
    def done():
        m = metrics(port)
        return finished_jobs(m) >= finished and m.get("tinyci_reporter_lag_events", 1) == 0
    core.wait_for(done, timeout, f"the reporter to hold {finished:,} finished jobs", step=step)
    return time.monotonic()


class EventStream:
    """An open /api/events stream read by a thread of its own: calls on_event(kind,
    data, t) for each event, t the moment its last line arrived."""

    def __init__(self, port, on_event, source=None):
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=60, source_address=(source, 0) if source else None)
        self.conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise BenchError(f"GET /api/events: {self.resp.status}")
        self.on_event = on_event
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        kind, data = None, None
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                t = time.monotonic()
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and kind:
                    self.on_event(kind, json.loads(data) if data else None, t)
                    kind, data = None, None
        except (OSError, ValueError, http.client.HTTPException):
            if not self.closed:
                raise

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def ms_stats(values):
    return {"n": len(values), "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
            "max_ms": max(values) if values else None}


def run_generator(ctx, port, runners, jobs, budget=300):
    """The load generator's capacity run with its saturated phase only (one paced and
    one unloaded job); returns its JSON."""
    gen = core.run_generator(ctx, port, "--runners", str(runners), "--jobs", str(jobs),
                             "--paced-jobs", "1", "--unloaded-jobs", "1",
                             "--phase-seconds", "0.2", "--budget", str(budget),
                             "--deadline", str(ctx.deadline))
    out, err = gen.communicate()
    if gen.returncode != 0:
        raise BenchError(f"load generator failed ({gen.returncode}): {err.strip()[-500:]}")
    return json.loads(out)


def dispatcher_finished(c):
    s = core.harness.Ctl(c.bins, f"127.0.0.1:{c.dispatcher_port}").status()
    return s["jobs_finished"]


# ---------------------------------------------------------------------------------------
# log: a printed line reaching its followers


def bench_log(ctx, table, extra):
    """A test that prints a line (with its time) each time the bench writes one into a
    FIFO; from the write to the line seen by `cictl log --follow` and by a client of
    the reporter (its /api/events job.log event, then /api/jobs/{id}/log)."""
    n = ctx.log_lines
    c = core.Cluster(ctx.bins, ctx.work, "log")
    fifo = os.path.join(c.dir, "trigger")
    os.mkfifo(fifo)
    script = os.path.join(c.dir, "echo.py")
    with open(script, "w") as f:
        f.write(ECHO_SCRIPT)
    # A runner started as root runs its tests as nobody: the test must reach both.
    for path, mode in ((ctx.work, 0o755), (c.dir, 0o755), (script, 0o644), (fifo, 0o666)):
        os.chmod(path, mode)
    # O_RDWR: the open does not wait for the test to open the other end.
    wfd = os.open(fifo, os.O_RDWR)
    cond = threading.Condition()
    seen = {"ctl": {}, "event": {}, "api": {}}
    printed = {}
    state = {"job": None, "fetched": 0, "partial": b"", "errors": []}
    follower = None
    stream = None
    try:
        c.start_dispatcher()
        # No sandbox: the test reads a FIFO in the bench's folder.
        c.start_runner(f"python3 -u {script} {fifo}", "--sandbox", "off")
        reporter, port = start_reporter(c)
        api = Http(port)

        def on_event(kind, data, t):
            if kind != "job.log" or state["job"] is None or data["job"]["id"] != state["job"]:
                return
            size = data["size"]
            with cond:
                for name, end in state.get("ends", {}).items():
                    if end <= size and name not in seen["event"]:
                        seen["event"][name] = t
            if size <= state["fetched"]:
                return
            try:
                status, headers, body, _ = api.get(
                    f"/api/jobs/{state['job']}/log?offset={state['fetched']}")
            except (OSError, http.client.HTTPException) as e:
                state["errors"].append(str(e))
                return
            t_body = time.monotonic()
            if status != 200:
                state["errors"].append(f"log: {status}")
                return
            state["fetched"] = int(headers.get("X-Log-Start", state["fetched"])) + len(body)
            data_bytes = state["partial"] + body
            lines = data_bytes.split(b"\n")
            state["partial"] = lines.pop()
            with cond:
                for line in lines:
                    name = line.split(b" ")[0].decode()
                    seen["api"].setdefault(name, t_body)
                cond.notify_all()

        stream = EventStream(port, on_event)
        job = core.harness.Ctl(c.bins, f"127.0.0.1:{c.dispatcher_port}").run(
            "dispatch", c.first, "--branch", "master")["job"]
        state["job"] = job
        # The job's log offsets: each line is "<name> <19-digit ns>\n".
        state["ends"] = {}
        c.runners[0].wait_log(r"running", 30)
        follower = subprocess.Popen(
            [c.bin("cictl"), "--dispatcher-server", f"127.0.0.1:{c.dispatcher_port}", "log",
             "--follow", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def read_follower():
            for raw in follower.stdout:
                t = time.monotonic()
                parts = raw.decode(errors="replace").split()
                if len(parts) == 2:
                    with cond:
                        seen["ctl"].setdefault(parts[0], t)
                        printed[parts[0]] = int(parts[1]) / 1e9
                        cond.notify_all()

        reader = threading.Thread(target=read_follower, daemon=True)
        reader.start()

        offset = 0
        samples = []
        for i in range(n + 1):  # the first line warms up and is not counted
            name = f"L{i:05d}"
            offset += len(name) + 1 + 19 + 1
            with cond:
                state["ends"][name] = offset
            wall0, t0 = time.time(), time.monotonic()
            os.write(wfd, (name + "\n").encode())
            with cond:
                deadline = t0 + 30
                while not all(name in seen[k] for k in ("ctl", "event", "api")):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        missing = [k for k in ("ctl", "event", "api") if name not in seen[k]]
                        raise BenchError(f"line {name} not seen by {', '.join(missing)} within "
                                         f"30 s ({'; '.join(state['errors'][-3:])})")
                    cond.wait(left)
                if i > 0:
                    samples.append({k: (seen[k][name] - t0) * 1000 for k in seen} |
                                   {"printed": (printed[name] - wall0) * 1000})
            # Lines a little apart, as a test prints them, not one burst.
            time.sleep(ctx.log_gap)
        os.write(wfd, b"end\n")
        c.watch.wait([c.first], 60)
        follower.wait(timeout=30)
        if follower.returncode != 0:
            raise BenchError(f"cictl log --follow exited {follower.returncode}: "
                             f"{follower.stderr.read().decode().strip()[-300:]}")
    finally:
        if follower and follower.poll() is None:
            follower.kill()
            follower.wait()
        if stream:
            stream.close()
        os.close(wfd)
        c.stop()
    res = {k: ms_stats([s[k] for s in samples]) for k in ("ctl", "event", "api", "printed")}
    extra["log"] = dict(res, samples=samples)
    table.add("log", f"line printed → `cictl log --follow` p50 ({n} lines)",
              res["ctl"]["p50_ms"], "ms", 100)
    table.add("log", f"line printed → `cictl log --follow` p99 ({n} lines)",
              res["ctl"]["p99_ms"], "ms", 250)
    table.add("log", "line printed → reporter's /api/events job.log event p50",
              res["event"]["p50_ms"], "ms", 100)
    table.add("log", "line printed → reporter's /api/events job.log event p99",
              res["event"]["p99_ms"], "ms", 250)
    table.add("log", "line printed → its text from /api/jobs/{id}/log after that event, p99",
              res["api"]["p99_ms"], "ms", 250)
    table.add("log", "trigger written → the test printed it, median (FIFO, Python)",
              res["printed"]["p50_ms"], "ms")


# ---------------------------------------------------------------------------------------
# event: a finished job on the stream


def bench_event(ctx, table, extra):
    """One runner (test `true`), the reporter, an open /api/events: N commits dispatched
    one after another, from the result file appearing (inotify) to the job.finished
    event arriving."""
    n = ctx.event_jobs
    c = core.Cluster(ctx.bins, ctx.work, "event")
    cond = threading.Condition()
    finished = {}
    stream = None
    try:
        c.start_dispatcher()
        c.start_runner("true", "--sandbox", "off")
        _, port = start_reporter(c)

        def on_event(kind, data, t):
            if kind == "job.finished":
                with cond:
                    finished.setdefault(data["job"]["commit"], t)
                    cond.notify_all()

        stream = EventStream(port, on_event)
        commits = core.fast_import(c.master, c.first, n + 1)
        ctl = core.harness.Ctl(c.bins, f"127.0.0.1:{c.dispatcher_port}")
        deltas = []
        for i, commit in enumerate(commits):
            ctl.run("dispatch", commit, "--branch", "master")
            t_file = c.watch.wait([commit], 30)
            with cond:
                if not cond.wait_for(lambda: commit in finished, 30):
                    raise BenchError(f"no job.finished for {commit} within 30 s")
                if i > 0:
                    deltas.append((finished[commit] - t_file) * 1000)
    finally:
        if stream:
            stream.close()
        c.stop()
    res = ms_stats(deltas)
    extra["event"] = dict(res, samples=deltas)
    table.add("event", f"result file → job.finished on /api/events p50 ({n} jobs)",
              res["p50_ms"], "ms")
    table.add("event", f"result file → job.finished on /api/events p99 ({n} jobs)",
              res["p99_ms"], "ms", 50)


# ---------------------------------------------------------------------------------------
# api: pages with 100,000 jobs


def timed_gets(port, paths, count):
    """Times `count` rounds of GETs of `paths` one after another on one connection;
    returns each round's total in ms."""
    client = Http(port)
    rounds = []
    try:
        for _ in range(count):
            total = 0.0
            for path in paths:
                status, _, body, seconds = client.get(path)
                if status != 200:
                    raise BenchError(f"GET {path}: {status} {body[:200]!r}")
                total += seconds
            rounds.append(total * 1000)
    finally:
        client.close()
    return rounds


DASHBOARD = ["/", "/assets/app.css", "/assets/common.js", "/assets/dashboard.js",
             "/api/branches", "/api/jobs?limit=50", "/api/runners"]


def bench_api(ctx, table, extra):
    """The read model filled with 100,000 finished jobs: 10,000 the real way (the load
    generator, 100 simulated runners, against a dispatcher the reporter follows), then
    copied under new ids in the read model. Then pages of /api/jobs and the dashboard
    page with everything it loads, one after another."""
    n = ctx.api_jobs
    c = core.Cluster(ctx.bins, ctx.work, "api")
    try:
        c.start_dispatcher()
        reporter, port = start_reporter(c)
        t0 = time.monotonic()
        gen = run_generator(ctx, c.dispatcher_port, 100, min(n, ctx.api_real_jobs))
        t_gen = time.monotonic()
        real = dispatcher_finished(c)
        wait_caught_up(port, real, ctx.deadline, step=0.2)
        t_caught = time.monotonic()
        real = total = int(sum(v for k, v in metrics(port).items()
                               if k.startswith("tinyci_jobs{")))
        if real < n:
            # The jobs that went through the dispatcher copied in the read model (the
            # reporter stopped) until there are n: on a busy machine 100,000 real ones
            # take many minutes.
            reporter.stop()
            total = copy_jobs(os.path.join(c.dir, "reporter.db"), n)
            reporter, port = start_reporter(c, log_name="reporter-2.log")
            wait_caught_up(port, 0, 60)
        client = Http(port)
        newest = client.json("/api/jobs?limit=1")["jobs"][0]["id"]
        client.close()
        pages = {
            "first page (50 jobs)": "/api/jobs",
            "a page in the middle (before= half)": f"/api/jobs?before={newest // 2}",
            "500 jobs (the largest page)": "/api/jobs?limit=500",
            "branch=master&status=passed": "/api/jobs?branch=master&status=passed",
            "status=failed (none match)": "/api/jobs?status=failed",
        }
        res = {}
        for label, path in pages.items():
            res[label] = ms_stats(timed_gets(port, [path], ctx.api_requests))
        dash = ms_stats(timed_gets(port, DASHBOARD, ctx.api_requests // 2))
        mem = reporter.memory()
        db = sum(os.path.getsize(os.path.join(c.dir, f)) for f in os.listdir(c.dir)
                 if f.startswith("reporter.db"))
    finally:
        c.stop()
    extra["api"] = {"jobs": total, "real_jobs": real, "generator_seconds": t_gen - t0,
                    "reporter_caught_up_seconds": t_caught - t0, "pages": res,
                    "dashboard": dash, "reporter_memory": mem, "db_bytes": db,
                    "generator": gen["saturated"]}
    for label, r in res.items():
        main = label.startswith("first") or label.startswith("a page")
        table.add("api", f"/api/jobs with {total:,} jobs, {label}, p99", r["p99_ms"], "ms",
                  20 if main else None, note="" if main else "diagnostic")
    table.add("api", "/api/jobs first page, p50", res["first page (50 jobs)"]["p50_ms"], "ms")
    table.add("api", f"dashboard with all it loads ({len(DASHBOARD)} GETs in a row), p50",
              dash["p50_ms"], "ms")
    table.add("api", f"dashboard with all it loads ({len(DASHBOARD)} GETs in a row), p99",
              dash["p99_ms"], "ms", 50)
    table.add("api", f"filling: {real:,} jobs through the dispatcher, the reporter "
              "caught up", t_caught - t0, "s", note=f"dispatcher alone {t_gen - t0:.1f} s" + (
                  f"; copied in the read model to {total:,}" if total > real else ""))
    table.add("api", "reporter RSS / read model on disk with them",
              f"{mem['VmRSS'] / MiB:.1f} / {db / MiB:.0f} MiB", "")


# ---------------------------------------------------------------------------------------
# streams: 500 open event streams; the dispatcher's capacity with a reporter following


def copy_jobs(db_path, n):
    """Copies the finished jobs of a stopped reporter's read model under new ids until
    it holds n jobs; returns how many it holds."""
    import sqlite3
    db = sqlite3.connect(db_path)
    try:
        real, top = db.execute("SELECT COUNT(*), MAX(id) FROM jobs").fetchone()
        cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
        rest = ", ".join(cols[1:])
        k = 1
        while real * (k + 1) <= n:
            db.execute(f"INSERT INTO jobs(id, {rest}) SELECT id + {k * top}, {rest} FROM jobs "
                       f"WHERE id <= {top}")
            k += 1
        left = n - real * k
        if left > 0:
            db.execute(f"INSERT INTO jobs(id, {rest}) SELECT id + {k * top}, {rest} FROM jobs "
                       f"WHERE id <= {top} ORDER BY id LIMIT {left}")
        db.commit()
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


class Drain:
    """Many open /api/events streams, read and discarded by one thread."""

    def __init__(self, port, count, sources):
        self.conns = []
        for i in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                              source_address=(sources[i % len(sources)], 0))
            conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
            sock = conn.sock
            resp = conn.getresponse()
            if resp.status != 200:
                raise BenchError(f"stream {i}: GET /api/events answered {resp.status}")
            self.conns.append((conn, resp, sock))
        self.bytes = 0
        self.ended = 0
        self.sel = selectors.DefaultSelector()
        for _, _, sock in self.conns:
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ)
        self.stop_r, self.stop_w = os.pipe()
        self.sel.register(self.stop_r, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            for key, _ in self.sel.select():
                if key.fileobj == self.stop_r:
                    return
                try:
                    data = key.fileobj.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(key.fileobj)
                    self.ended += 1
                self.bytes += len(data)

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join()
        for conn, resp, sock in self.conns:
            resp.close()
            sock.close()
            conn.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        self.sel.close()


def capacity_run(ctx, name, with_reporter):
    """The capacity benchmark's saturated phase (1,000 simulated runners), with or
    without a reporter following the dispatcher; returns jobs/s."""
    c = core.Cluster(ctx.bins, ctx.work, name)
    try:
        c.start_dispatcher()
        if with_reporter:
            start_reporter(c)
        gen = run_generator(ctx, c.dispatcher_port, 1000, ctx.capacity_jobs_reporter,
                            budget=120)
    finally:
        c.stop()
    return gen["saturated"]["jobs_per_s"]


def bench_streams(ctx, table, extra):
    """500 open /api/events streams (from 5 loopback addresses, 100 each, within the
    per-address bound) read by one thread: the reporter's peak RSS rise while they are
    open and 2,000 jobs' events go to each, and a page's p99 meanwhile. Then the
    dispatcher's capacity (1,000 simulated runners) with and without a reporter."""
    count = ctx.streams
    sources = [f"127.0.0.{i}" for i in range(2, 7)]
    c = core.Cluster(ctx.bins, ctx.work, "streams")
    drain = None
    try:
        c.start_dispatcher()
        reporter, port = start_reporter(c)
        run_generator(ctx, c.dispatcher_port, 10, 2000)
        wait_caught_up(port, dispatcher_finished(c), 120)
        base_pages = ms_stats(timed_gets(port, ["/api/jobs"], 200))
        time.sleep(1)
        before = reporter.memory()
        drain = Drain(port, count, sources)
        time.sleep(1)
        opened = reporter.memory()
        # Events for every stream while pages are asked for.
        gen = core.run_generator(ctx, c.dispatcher_port, "--runners", "10", "--jobs", "2000",
                                 "--paced-jobs", "1", "--unloaded-jobs", "1",
                                 "--phase-seconds", "0.2", "--deadline", str(ctx.deadline))
        under_load = []
        while gen.poll() is None:
            under_load += timed_gets(port, ["/api/jobs"], 10)
        if gen.returncode != 0:
            raise BenchError(f"load generator failed: {gen.stderr.read().strip()[-300:]}")
        wait_caught_up(port, dispatcher_finished(c), 120)
        time.sleep(1)
        quiet = ms_stats(timed_gets(port, ["/api/jobs"], 200))
        after = reporter.memory()
        streamed, ended = drain.bytes, drain.ended
    finally:
        if drain:
            drain.close()
        c.stop()
    rise = (after["VmHWM"] - before["VmHWM"]) / MiB
    loaded = ms_stats(under_load)
    extra["streams"] = {"before": before, "opened": opened, "after": after,
                        "pages_without": base_pages, "pages_events_flowing": loaded,
                        "pages_open_quiet": quiet, "bytes_streamed": streamed,
                        "streams_ended": ended}
    table.add("streams", f"reporter peak RSS rise, {count} open streams, 2,000 jobs' events",
              rise, "MiB", 16, note=f"{(opened['VmRSS'] - before['VmRSS']) / MiB:.2f} MiB "
              f"just opening them; {ended} ended by the reporter")
    table.add("streams", f"/api/jobs p99, {count} streams open, quiet", quiet["p99_ms"], "ms", 50)
    table.add("streams", f"/api/jobs p99, {count} streams open, events flowing",
              loaded["p99_ms"], "ms", 50, note=f"{loaded['n']} requests")
    table.add("streams", "/api/jobs p99, no stream open", base_pages["p99_ms"], "ms")

    # The dispatcher's capacity, the runs interleaved (the machine's noise is larger than
    # the difference looked for).
    rates = {"none": [], "reporter": []}
    for r in range(ctx.capacity_rounds):
        for label in ("none", "reporter"):
            rates[label].append(capacity_run(ctx, f"capacity-{label}-{r}", label == "reporter"))
    extra["streams"]["capacity"] = rates
    none, rep = statistics.median(rates["none"]), statistics.median(rates["reporter"])
    table.add("streams", "capacity, 1,000 runners, no reporter (median of "
              f"{ctx.capacity_rounds})", none, "jobs/s", better="higher",
              note=", ".join(f"{x:,.0f}" for x in rates["none"]))
    table.add("streams", "capacity, 1,000 runners, a reporter following", rep, "jobs/s",
              better="higher", note=", ".join(f"{x:,.0f}" for x in rates["reporter"]))
    table.add("streams", "capacity lost to the reporter", (1 - rep / none) * 100, "%", 10)


# ---------------------------------------------------------------------------------------
# catchup: a reporter restarted behind the feed


def bench_catchup(ctx, table, extra):
    """A reporter follows 100 jobs, is stopped, 10,000 jobs go through the dispatcher
    (load generator, 100 runners), it is started again: the time from its start to a
    read model holding every job, nothing left unapplied. The same for a reporter
    started with an empty read model (diagnostic)."""
    n = ctx.catchup_jobs
    c = core.Cluster(ctx.bins, ctx.work, "catchup")
    try:
        c.start_dispatcher()
        reporter, port = start_reporter(c)
        run_generator(ctx, c.dispatcher_port, 10, 100)
        wait_caught_up(port, dispatcher_finished(c), 60)
        reporter.stop()
        run_generator(ctx, c.dispatcher_port, 100, n)
        total = dispatcher_finished(c)
        t0 = time.monotonic()
        reporter, port = start_reporter(c, log_name="reporter-2.log")
        t_up = time.monotonic()
        t_done = wait_caught_up(port, total, 120, step=0.005)
        restarted = t_done - t0
        reporter.stop()
        os.makedirs(os.path.join(c.dir, "fresh"))
        t0 = time.monotonic()
        fresh = core.Daemon("reporter-fresh", [
            c.bin("ci-reporter"), "--dispatcher-server", f"127.0.0.1:{c.dispatcher_port}",
            "--db", os.path.join(c.dir, "fresh", "reporter.db"), "--http", "127.0.0.1:0"],
            os.path.join(c.dir, "reporter-fresh.log"))
        c.daemons.append(fresh)
        fport = fresh.wait_port()
        t_fresh = wait_caught_up(fport, total, 120, step=0.005) - t0
        log = reporter.text()
    finally:
        c.stop()
    extra["catchup"] = {"jobs": total, "restarted_s": restarted,
                        "start_to_listening_s": t_up - t0, "fresh_s": t_fresh,
                        "reporter_log_tail": log.splitlines()[-5:]}
    table.add("catchup", f"reporter restarted after {n:,} jobs: start → caught up",
              restarted, "s", 2)
    table.add("catchup", f"reporter with an empty read model, {total:,} jobs: start → caught up",
              t_fresh, "s", note="diagnostic")


# ---------------------------------------------------------------------------------------
# memory: the 50 MiB job's log on disk


def log_files(state_dir, job):
    """The dispatcher's files of a job's live log: {name: bytes}."""
    folder = os.path.join(state_dir, "logs")
    out = {}
    for name in os.listdir(folder):
        if re.match(rf"^{job}-\d+\.", name):
            out[name] = os.path.getsize(os.path.join(folder, name))
    return out


def check_big_log(c, job, size):
    """Reads the job's log back with `cictl log` and checks it: a head, one omitted
    marker, a tail, adding up to `size` bytes of the test's output; returns (files,
    consistent, head bytes, tail bytes, note)."""
    files = log_files(os.path.join(c.dir, "state"), job)
    proc = subprocess.run([c.bin("cictl"), "--dispatcher-server",
                           f"127.0.0.1:{c.dispatcher_port}", "log", str(job)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = proc.stdout
    marks = list(re.finditer(rb"\[\.\.\. (\d+) bytes omitted \.\.\.\]\n", out))
    if proc.returncode != 0 or len(marks) != 1:
        return files, False, 0, 0, (f"cictl exit {proc.returncode}, {len(out):,} bytes read, "
                                    f"{len(marks)} omitted markers")
    m = marks[0]
    first, last, omitted = out[:m.start()], out[m.end():], int(m.group(1))
    ok = (first == b"x" * len(first) and last == b"x" * len(last) and
          len(first) + omitted + len(last) == size)
    note = f"head {len(first):,} B, {omitted:,} B omitted, tail {len(last):,} B"
    return files, ok, len(first), len(last), note
