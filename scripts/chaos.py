#!/usr/bin/env python3
"""Chaos soak: commits keep flowing into two repositories while random daemons (the
reporter included) are killed with SIGKILL and restarted at random moments. Each
repository has its own observer (--name a, --name b); the runners provision themselves
(--workdir, no clone of their own) and run two jobs at once (--slots 2). Then it checks
the invariant, per repository: every commit its master has on its branches (after the
first) has exactly one result, in test_results/<name>/, and the reporter's read model,
once caught up, lists the dispatcher's jobs."""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import harness
from harness import Ctl, Daemon, HarnessError, free_port

ENV = harness.git_env("Chaos")


def git(repo, *args):
    return harness.git(repo, *args, env=ENV)


def wait_for(condition, timeout, what):
    """True once condition() is; False (and says so) after `timeout` seconds."""
    try:
        return bool(harness.wait_for(condition, timeout, what, step=0.05))
    except HarnessError as e:
        print(f"chaos: {e}", file=sys.stderr)
        return False


class Reporter(Daemon):
    """ci-reporter on an ephemeral HTTP port: a new one at each start, read from the
    line it logs once it listens."""

    LISTENING = re.compile(r"ci-reporter listening on [0-9.]+:(\d+)")

    def start(self):
        self.seen = len(self.LISTENING.findall(self.text()))
        return super().start()

    def port(self):
        """The port the running process listens on, or None (not yet, or not running)."""
        found = self.LISTENING.findall(self.text())
        if not self.running() or len(found) <= self.seen:
            return None
        return int(found[-1])

    def get(self, path):
        """The JSON answer to GET `path`, or None when the reporter cannot answer."""
        port = self.port()
        if port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.loads(r.read())
        except (OSError, ValueError):  # refused, reset, an HTTP error, not JSON
            return None

    def jobs(self):
        """Every job of the read model (GET /api/jobs, all pages), or None."""
        jobs, before = [], None
        while True:
            page = self.get("/api/jobs?limit=500" + (f"&before={before}" if before else ""))
            if page is None:
                return None
            jobs += page["jobs"]
            before = page.get("next_before")
            if before is None:
                return jobs


def job_key(job):
    return job["id"], job["commit"], job["status"]


def model_mismatches(dispatcher_jobs, reporter_jobs):
    """Lines naming each job the two lists disagree on (by id, commit and status)."""
    mine = {j["id"]: job_key(j) for j in dispatcher_jobs}
    theirs = {j["id"]: job_key(j) for j in reporter_jobs}
    lines = []
    for i in sorted(mine.keys() | theirs.keys()):
        if mine.get(i) != theirs.get(i):
            lines.append(f"job {i}: dispatcher {mine.get(i)}, reporter {theirs.get(i)}")
    return lines


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
    for exe in ("ci-dispatcher", "ci-runner", "ci-observer", "ci-reporter", "cictl"):
        if not os.access(os.path.join(bin_dir, exe), os.X_OK):
            print(f"chaos: {exe} not found in {bin_dir}; build first (scripts/build.sh)",
                  file=sys.stderr)
            return 2

    work = tempfile.mkdtemp(prefix="ci-chaos-")
    repos = ("a", "b")
    masters, firsts = {}, {}
    for name in repos:
        master = os.path.join(work, f"master-{name}")
        os.makedirs(master)
        git(master, "init", "-q", "-b", "master")
        with open(os.path.join(master, "seed"), "w") as f:
            f.write(f"{name} 0\n")
        git(master, "add", "seed")
        git(master, "commit", "-q", "-m", f"seed of {name}")
        masters[name] = master
        firsts[name] = git(master, "rev-parse", "HEAD")

    port = free_port()
    ctl = Ctl(bin_dir, f"127.0.0.1:{port}")
    results = os.path.join(work, "test_results")
    dispatcher = Daemon("dispatcher", [os.path.join(bin_dir, "ci-dispatcher"), "--port", str(port),
                                       "--results-dir", results,
                                       "--state-dir", os.path.join(work, "state"),
                                       "--heartbeat-interval", "0.3"],
                        os.path.join(work, "dispatcher.log"))
    runners = []
    for i in range(args.runners):
        runners.append(Daemon(f"runner{i}", [
            os.path.join(bin_dir, "ci-runner"), "--port", str(free_port()),
            "--dispatcher-server", f"127.0.0.1:{port}", "--dispatcher-timeout", "2",
            "--slots", "2", "--workdir", os.path.join(work, f"runner{i}.work"),
            "--test-command", "echo tested $CI_COMMIT; sleep 0.$(( $$ % 3 ))"],
            os.path.join(work, f"runner{i}.log")))
    observers = []
    for name in repos:
        obs_clone = os.path.join(work, f"observer-{name}")
        subprocess.run(["git", "clone", "-q", masters[name], obs_clone], check=True, env=ENV)
        observers.append(Daemon(f"observer-{name}", [
            os.path.join(bin_dir, "ci-observer"), "--dispatcher-server", f"127.0.0.1:{port}",
            "--name", name, "--url", masters[name], "--interval", "0.2", obs_clone],
            os.path.join(work, f"observer-{name}.log")))
    reporter = Reporter("reporter", [os.path.join(bin_dir, "ci-reporter"),
                                     "--dispatcher-server", f"127.0.0.1:{port}",
                                     "--db", os.path.join(work, "reporter.db"),
                                     "--http", "127.0.0.1:0"],
                        os.path.join(work, "reporter.log"))
    daemons = [dispatcher, *runners, *observers, reporter]
    kills = {"dispatcher": 0, "runner": 0, "observer": 0, "reporter": 0}
    ok = False
    try:
        dispatcher.start()
        if not wait_for(lambda: ctl.try_status() is not None, 20, "the dispatcher"):
            return 1
        for r in runners:
            r.start()
        for o in observers:
            o.start()
        reporter.start()
        for o in observers:
            if not wait_for(lambda: "first look" in o.text(), 20, f"the {o.name}"):
                return 1
        if not wait_for(lambda: reporter.get("/api/jobs") is not None, 20, "the reporter"):
            return 1

        print(f"chaos: seed {seed}, {args.minutes:g} minutes, {args.runners} runners of 2 slots, "
              f"repositories {', '.join(repos)}, in {work}")
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
                kills[re.sub(r"(\d+|-\w+)$", "", victim.name)] += 1
                down.append((now + rng.uniform(0, 2), victim))
                next_kill = now + rng.uniform(1, 5)
            # Either repository; mostly master, now and then a short-lived feature branch.
            master = masters[rng.choice(repos)]
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

        expected = {name: set(git(masters[name], "rev-list", "--all").split()) - {firsts[name]}
                    for name in repos}

        def results_of(name):
            folder = os.path.join(results, name)
            if not os.path.isdir(folder):
                return set()
            return {n for n in os.listdir(folder) if re.fullmatch(r"[0-9a-f]{40}", n)}

        wait_for(lambda: all(expected[n] <= results_of(n) for n in repos), 180,
                 "every commit's result")
        present = {name: results_of(name) for name in repos}
        try:
            jobs = ctl.jobs()
        except HarnessError as e:
            print(f"chaos: {e}", file=sys.stderr)
            jobs = None
        per_commit = {}
        for job in jobs or []:
            key = (job.get("repo") or "-", job["commit"])
            per_commit[key] = per_commit.get(key, 0) + 1
        lost = sorted((n, c) for n in repos for c in expected[n] - present[n])
        duplicated = sorted(k for k, n in per_commit.items() if n > 1)
        # Results of a commit the repository does not have, and default-repository
        # results (this soak has none).
        unexpected = sorted((n, c) for n in repos for c in present[n] - expected[n])
        if os.path.isdir(results):
            unexpected += [("-", n) for n in os.listdir(results)
                           if re.fullmatch(r"[0-9a-f]{40}", n)]
        # The reporter has caught up once its read model lists the dispatcher's jobs; it
        # may be up to its 30 s reconnection backoff late, after the dispatcher's kills.
        mismatches = ["the dispatcher's jobs could not be listed"]
        if jobs is not None:
            model = {}
            def caught_up():
                model["jobs"] = reporter.jobs()
                return model["jobs"] is not None and not model_mismatches(jobs, model["jobs"])
            if wait_for(caught_up, 120, "the reporter to catch up"):
                mismatches = []
            elif model["jobs"] is None:
                mismatches = [f"the reporter does not answer (running: {reporter.running()})"]
            else:
                mismatches = model_mismatches(jobs, model["jobs"])
        total_expected = sum(len(expected[n]) for n in repos)
        total_present = sum(len(present[n]) for n in repos)
        print(f"chaos: commits {total_expected}, kills: dispatcher {kills['dispatcher']}, "
              f"runners {kills['runner']}, observer {kills['observer']}, "
              f"reporter {kills['reporter']}; results {total_present}, "
              f"lost {len(lost)}, duplicated {len(duplicated)}, unexpected {len(unexpected)}, "
              f"reporter mismatches {len(mismatches)}")
        for name in repos:
            print(f"chaos: repository {name}: commits {len(expected[name])}, "
                  f"results {len(present[name])}, "
                  f"lost {sum(1 for n, _ in lost if n == name)}, "
                  f"duplicated {sum(1 for n, _ in duplicated if n == name)}")
        for n, c in lost[:10]:
            print(f"chaos: lost {n} {c}")
        for n, c in duplicated[:10]:
            print(f"chaos: duplicated {n} {c}")
        for m in mismatches[:10]:
            print(f"chaos: reporter mismatch: {m}")
        ok = (not lost and not duplicated and not unexpected and jobs is not None
              and not mismatches)
        print("chaos: invariant holds" if ok else "chaos: INVARIANT BROKEN")
        return 0 if ok else 1
    finally:
        for d in daemons:
            d.stop(timeout=10)
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"chaos: logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
