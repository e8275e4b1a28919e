#!/usr/bin/env python3
"""Chaos soak: commits keep flowing while random daemons are killed with SIGKILL and
restarted at random moments. Then it checks the invariant: every commit the master
repository has on its branches (after the first) has exactly one result."""

import argparse
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

ENV = dict(os.environ, GIT_AUTHOR_NAME="Chaos", GIT_AUTHOR_EMAIL="chaos@example.com",
           GIT_COMMITTER_NAME="Chaos", GIT_COMMITTER_EMAIL="chaos@example.com")


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout.strip()


def ask(port, line, timeout=5.0):
    """One request to the dispatcher; returns (header, body) or None if it is down."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
            header, _, rest = data.partition(b"\n")
            words = header.decode().split()
            body = b""
            if words and words[0] == "OK" and len(words) == 2 and line.split()[0] in (
                    "status", "jobs", "runners"):
                need = int(words[1])
                body = rest
                while len(body) < need:
                    chunk = s.recv(65536)
                    if not chunk:
                        return None
                    body += chunk
            return header.decode(), body.decode()
    except OSError:
        return None


class Daemon:
    def __init__(self, name, argv, log):
        self.name, self.argv, self.log = name, argv, log
        self.proc = None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    print(f"chaos: timed out waiting for {what}", file=sys.stderr)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to make chaos")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--runners", type=int, default=3)
    parser.add_argument("--bin", default=os.path.join(here, "..", "build", "bin"),
                        help="folder of the executables")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.runners < 1:
        parser.error("--runners must be at least 1")
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    bin_dir = os.path.abspath(args.bin)
    for exe in ("ci-dispatcher", "ci-runner", "ci-observer"):
        if not os.access(os.path.join(bin_dir, exe), os.X_OK):
            print(f"chaos: {exe} not found in {bin_dir}; build first (scripts/build.sh)",
                  file=sys.stderr)
            return 2

    work = tempfile.mkdtemp(prefix="ci-chaos-")
    master = os.path.join(work, "master")
    os.makedirs(master)
    git(master, "init", "-q", "-b", "master")
    with open(os.path.join(master, "seed"), "w") as f:
        f.write("0\n")
    git(master, "add", "seed")
    git(master, "commit", "-q", "-m", "seed")
    first = git(master, "rev-parse", "HEAD")

    port = free_port()
    results = os.path.join(work, "test_results")
    dispatcher = Daemon("dispatcher", [os.path.join(bin_dir, "ci-dispatcher"), "--port", str(port),
                                       "--results-dir", results,
                                       "--state-dir", os.path.join(work, "state"),
                                       "--heartbeat-interval", "0.3"],
                        os.path.join(work, "dispatcher.log"))
    runners = []
    for i in range(args.runners):
        clone = os.path.join(work, f"runner{i}")
        subprocess.run(["git", "clone", "-q", master, clone], check=True, env=ENV)
        runners.append(Daemon(f"runner{i}", [
            os.path.join(bin_dir, "ci-runner"), "--port", str(free_port()),
            "--dispatcher-server", f"127.0.0.1:{port}", "--dispatcher-timeout", "2",
            "--test-command", "echo tested $CI_COMMIT; sleep 0.$(( $$ % 3 ))", clone],
            os.path.join(work, f"runner{i}.log")))
    obs_clone = os.path.join(work, "observer")
    subprocess.run(["git", "clone", "-q", master, obs_clone], check=True, env=ENV)
    observer = Daemon("observer", [os.path.join(bin_dir, "ci-observer"),
                                   "--dispatcher-server", f"127.0.0.1:{port}",
                                   "--interval", "0.2", obs_clone],
                      os.path.join(work, "observer.log"))
    daemons = [dispatcher, *runners, observer]
    kills = {"dispatcher": 0, "runner": 0, "observer": 0}
    ok = False
    try:
        dispatcher.start()
        if not wait_for(lambda: ask(port, "status") is not None, 20, "the dispatcher"):
            return 1
        for r in runners:
            r.start()
        observer.start()
        if not wait_for(lambda: "first look" in open(observer.log).read(), 20, "the observer"):
            return 1

        print(f"chaos: seed {seed}, {args.minutes:g} minutes, {args.runners} runners, in {work}")
        end = time.monotonic() + args.minutes * 60
        next_kill = time.monotonic() + rng.uniform(1, 4)
        down = []  # (restart_at, daemon)
        branch_no = 0
        commits = 0
        while time.monotonic() < end:
            now = time.monotonic()
            for item in list(down):
                if now >= item[0]:
                    item[1].start()
                    down.remove(item)
            if now >= next_kill:
                victim = rng.choice([d for d in daemons if d not in [x[1] for x in down]])
                victim.kill()
                kills[re.sub(r"\d+$", "", victim.name)] += 1
                down.append((now + rng.uniform(0, 2), victim))
                next_kill = now + rng.uniform(1, 5)
            # Mostly master; now and then a short-lived feature branch.
            if rng.random() < 0.05:
                branch_no += 1
                name = f"feature-{branch_no}"
                git(master, "checkout", "-q", "-b", name)
                for k in range(rng.randint(1, 3)):
                    with open(os.path.join(master, f"{name}-{k}"), "w") as f:
                        f.write(f"{k}\n")
                    git(master, "add", "-A")
                    git(master, "commit", "-q", "-m", f"{name} {k}")
                    commits += 1
                git(master, "checkout", "-q", "master")
            else:
                with open(os.path.join(master, "seed"), "a") as f:
                    f.write(f"{commits}\n")
                git(master, "commit", "-q", "-am", f"change {commits}")
                commits += 1
            time.sleep(rng.uniform(0.05, 0.5))
        for _, d in down:
            d.start()

        expected = set(git(master, "rev-list", "--all").split()) - {first}
        def done():
            present = set(os.listdir(results)) if os.path.isdir(results) else set()
            return expected <= present
        wait_for(done, 180, "every commit's result")
        present = {n for n in os.listdir(results) if re.fullmatch(r"[0-9a-f]{40}", n)}
        reply = ask(port, "jobs 1000000")
        per_commit = {}
        if reply:
            for line in reply[1].splitlines()[1:]:
                words = line.split()
                per_commit[words[1]] = per_commit.get(words[1], 0) + 1
        lost = sorted(expected - present)
        duplicated = sorted(c for c, n in per_commit.items() if n > 1)
        unexpected = sorted(present - expected)
        print(f"chaos: commits {len(expected)}, kills: dispatcher {kills['dispatcher']}, "
              f"runners {kills['runner']}, observer {kills['observer']}; results {len(present)}, "
              f"lost {len(lost)}, duplicated {len(duplicated)}, unexpected {len(unexpected)}")
        for c in lost[:10]:
            print(f"chaos: lost {c}")
        for c in duplicated[:10]:
            print(f"chaos: duplicated {c}")
        ok = not lost and not duplicated and not unexpected and reply is not None
        print("chaos: invariant holds" if ok else "chaos: INVARIANT BROKEN")
        return 0 if ok else 1
    finally:
        for d in daemons:
            d.stop()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"chaos: logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
