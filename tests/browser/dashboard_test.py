#!/usr/bin/python3
"""The reporter's pages in a real browser (headless Chromium, see cdp.py).

A real git repository, a real ci-dispatcher, two ci-runners, a ci-observer and a
ci-reporter on loopback ports; the commits are made while the observer watches. The
test then checks what a user sees:

- the dashboard shows the passing commits as passed and the failing ones as failed,
  and the branch as failing since the commit that broke it; a branch's link shows its
  jobs only;
- a failing job's page names the failing test and the commit that broke it;
- while a job runs, the dashboard shows it running without being reloaded, and its job
  page shows a new log line as soon as the test prints it, without being reloaded.

It saves a screenshot of the dashboard (--screenshot; with --update-docs also as
docs/dashboard.png). Exits 77 (skipped) when no Chromium is installed; every daemon and
the browser are stopped at the end, whatever happened.

    dashboard_test.py --bin BUILD/bin --work BUILD/browser/work \\
        --screenshot BUILD/browser/dashboard.png [--update-docs]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parent.parent
SKIPPED = 77
TIMEOUT = 60  # seconds any one wait may take: generous, the machine may be busy


class TestFailure(Exception):
    pass


def wait_until(condition, what, timeout=TIMEOUT):
    """Polls `condition` until it returns something truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out waiting for {what}")
        time.sleep(0.05)


def check(condition, message):
    if not condition:
        raise TestFailure(message)


class Daemon:
    """A daemon from the build, its output in a log file of its own."""

    def __init__(self, bin_dir, name, args, log_file):
        self.name = name
        self.log_file = log_file
        with open(log_file, "wb") as log:
            self.proc = subprocess.Popen([str(bin_dir / name)] + [str(a) for a in args],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def log(self):
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_listening(self, pattern=r"listening on \S+:([0-9]+)"):
        def port():
            match = re.search(pattern, self.log())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                raise TestFailure(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            return None
        return wait_until(port, f"{self.name} to listen")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- The repository under test: a small calculator with its unittest suite. ---

CALC = '''"""A calculator for expressions like "1 + 2 * -3"."""


def tokenize(text):
    tokens = []
    for word in text.split():
        {number}
    return tokens


def evaluate(text):
    tokens = tokenize(text)
    value = tokens[0]
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        value = OPERATORS[op](value, operand)
    return value


OPERATORS = {{
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
{extra}}}
'''

# Numbers, right (passing) and sped up and wrong (negative numbers read as positive).
RIGHT = ('tokens.append(int(word) if word.lstrip("-").isdigit() else word)')
WRONG = ('tokens.append(int(word.lstrip("-")) if word.lstrip("-").isdigit() else word)')

TESTS = '''import unittest

from calc import evaluate, tokenize


class TokenizerTest(unittest.TestCase):
    def test_numbers(self):
        self.assertEqual(tokenize("1 + 22"), [1, "+", 22])

    def test_negative_numbers(self):
        self.assertEqual(tokenize("-4 * 2"), [-4, "*", 2])


class EvaluateTest(unittest.TestCase):
    def test_sum(self):
        self.assertEqual(evaluate("1 + 2 + 3"), 6)

    def test_left_to_right(self):
        self.assertEqual(evaluate("1 + 2 * 3"), 9)

    def test_subtraction(self):
        self.assertEqual(evaluate("7 - 2 - 1"), 4)
{extra}

if __name__ == "__main__":
    unittest.main()
'''

DIVISION_TEST = '''
    def test_division(self):
        self.assertEqual(evaluate("7 // 2"), 3)
'''
POWER_TEST = '''
    def test_power(self):
        self.assertEqual(evaluate("2 ** 10"), 1024)
'''

AUTHORS = {
    "alice": ("Alice Martin", "alice@example.com"),
    "bob": ("Bob Chen", "bob@example.com"),
    "carol": ("Carol Diaz", "carol@example.com"),
    "dave": ("Dave Okafor", "dave@example.com"),
}


class Repo:
    def __init__(self, path):
        self.path = path
        self.path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=master")

    def git(self, *args, author="alice"):
        name, email = AUTHORS[author]
        env = dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
                   GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email,
                   GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
        return subprocess.run(["git", "-C", str(self.path)] + list(args), env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def commit(self, author, subject, files):
        for name, text in files.items():
            path = self.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if name.startswith(".ci/"):
                path.chmod(0o755)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", subject, author=author)
        return self.git("rev-parse", "HEAD")


def calc(number, extra=()):
    return CALC.format(number=number, extra="".join(f"    {op!r}: {fn},\n" for op, fn in extra))


def tests(*extra):
    return TESTS.format(extra="".join(extra))


# --- The cluster. ---

class Cluster:
    def __init__(self, bin_dir, work):
        self.bin_dir = bin_dir
        self.work = work
        self.daemons = []
        self.http = None

    def start(self, name, args, log_name, pattern=r"listening on \S+:([0-9]+)"):
        daemon = Daemon(self.bin_dir, name, args, self.work / log_name)
        self.daemons.append(daemon)
        if pattern is None:
            return daemon
        return daemon, daemon.wait_listening(pattern)

    def stop(self):
        for daemon in reversed(self.daemons):
            daemon.stop()

    def logs(self):
        return "\n".join(f"---- {d.log_file.name}\n{d.log()[-4000:]}" for d in self.daemons)

    def cictl(self, *args):
        out = subprocess.run([str(self.bin_dir / "cictl"), "--dispatcher-server", self.server,
                              "--json"] + list(args), capture_output=True, text=True)
        if out.returncode != 0:
            raise TestFailure(f"cictl {' '.join(args)}: {out.stdout}{out.stderr}")
        return json.loads(out.stdout)

    def api(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return {"jobs": []}  # not in the read model yet
            raise

    def wait_job(self, commit, finished=False):
        """The commit's job, once the reporter has it (and it finished)."""
        def job():
            jobs = self.api(f"/api/commits/{commit}")["jobs"]
            if jobs and (not finished or jobs[0]["state"] == "finished"):
                return jobs[0]
            return None
        return wait_until(job, f"a job of {commit}{' to finish' if finished else ''}")

    def wait_finished(self, commit):
        return self.wait_job(commit, finished=True)


# --- What the pages show. ---

def table(browser, table_id):
    """The rows of a table's body, each a list of its cells' text."""
    return browser.evaluate(
        f"[...document.querySelectorAll('#{table_id} tbody tr')]"
        ".map((tr) => [...tr.cells].map((td) => td.innerText.trim()))")


def wait_row(browser, table_id, predicate, what, timeout=TIMEOUT):
    """Waits until a row of the table satisfies `predicate`; returns it."""
    def row():
        return next((r for r in table(browser, table_id) if predicate(r)), None)
    try:
        return wait_until(row, what, timeout)
    except TestFailure:
        raise TestFailure(f"timed out waiting for {what}; #{table_id} shows:\n"
                          + "\n".join(" | ".join(r) for r in table(browser, table_id)))


def job_row(job_id, status):
    # Dashboard columns: Job, Status, Commit, Subject, Author, Repository, Branch, Runner,
    # Duration, Tests.
    return lambda r: r[0] == f"#{job_id}" and r[1] == status


def run(args, work, cdp):
    work.mkdir(parents=True)
    # Run as root, the runners run the tests as an unprivileged user, who must reach the
    # folder the live job waits on.
    work.chmod(0o755)
    gate_dir = work / "gate"
    gate_dir.mkdir()
    gate_dir.chmod(0o777)
    gate = gate_dir / "open"

    repo = Repo(work / "master")
    repo.commit("alice", "Start the calculator project", {"README.md": "# calc\n"})

    cluster = Cluster(args.bin, work)
    browser = None
    live_job = []
    try:
        _, port = cluster.start("ci-dispatcher",
                                ["--port", "0", "--results-dir", work / "results",
                                 "--state-dir", work / "dispatcher", "--heartbeat-interval",
                                 "0.2"], "dispatcher.log")
        cluster.server = f"127.0.0.1:{port}"
        for n in (1, 2):
            clone = work / f"runner{n}"
            subprocess.run(["git", "clone", "--quiet", str(repo.path), str(clone)], check=True)
            cluster.start("ci-runner",
                          ["--port", "0", "--dispatcher-server", cluster.server,
                           "--dispatcher-timeout", "2", "--timeout", "120",
                           "--sandbox-share", gate_dir, clone], f"runner{n}.log")
        _, cluster.http = cluster.start(
            "ci-reporter", ["--dispatcher-server", cluster.server, "--db", work / "reporter.db",
                            "--http", "127.0.0.1:0"], "reporter.log",
            r"ci-reporter listening on \S+:([0-9]+)")
        wait_until(lambda: len(cluster.cictl("runners")["runners"]) == 2, "both runners to register")
        # The observer hands the commits over with their author and subject. The commits
        # already there when it first looks count as seen.
        observer = cluster.start("ci-observer", ["--dispatcher-server", cluster.server,
                                                 "--interval", "0.1", repo.path],
                                 "observer.log", pattern=None)
        wait_until(lambda: "first look" in observer.log() or observer.proc.poll() is not None,
                   "the observer's first look")
        check(observer.proc.poll() is None, f"the observer exited:\n{observer.log()}")

        # The first commit alone, so that the job ids follow the history.
        c0 = repo.commit("alice", "Add the calculator and its tests",
                         {"calc.py": calc(RIGHT), "tests/test_calc.py": tests()})
        first = cluster.wait_finished(c0)
        jobs = {c0: first["id"]}
        statuses = {c0: first["status"]}
        c1 = repo.commit("dave", "Add integer division",
                         {"calc.py": calc(RIGHT, [("//", "lambda a, b: a // b")]),
                          "tests/test_calc.py": tests(DIVISION_TEST)})
        c2 = repo.commit("bob", "Tokenize numbers without a second pass",
                         {"calc.py": calc(WRONG, [("//", "lambda a, b: a // b")])})
        c3 = repo.commit("carol", "Document the operators",
                         {"README.md": "# calc\n\nOperators: `+ - * //`, left to right.\n"})
        # The branch once master's commits are handed over: else the observer may test
        # c1 as feature/power's.
        for commit in (c1, c2, c3):
            cluster.wait_job(commit)
        repo.git("checkout", "--quiet", "-b", "feature/power", c1)
        power = [("//", "lambda a, b: a // b"), ("**", "lambda a, b: a ** b")]
        feature = repo.commit("dave", "Add the power operator",
                              {"calc.py": calc(RIGHT, power),
                               "tests/test_calc.py": tests(DIVISION_TEST, POWER_TEST)})
        repo.git("checkout", "--quiet", "master")
        for commit in (c1, c2, c3, feature):
            job = cluster.wait_finished(commit)
            jobs[commit] = job["id"]
            statuses[commit] = job["status"]
        check(statuses == {c0: "passed", c1: "passed", c2: "failed", c3: "failed",
                           feature: "passed"}, f"the jobs ended {statuses}")

        browser = cdp.Browser(width=1280, height=args.height)
        base = f"http://127.0.0.1:{cluster.http}"

        # The dashboard: each job with its status, the branch failing since Bob's commit.
        browser.open(base + "/")
        for commit, status in statuses.items():
            row = wait_row(browser, "jobs", job_row(jobs[commit], status),
                           f"job #{jobs[commit]} shown as {status}")
            check(row[2] == commit[:8], f"job #{jobs[commit]} shows commit {row[2]}")
        row = wait_row(browser, "jobs", job_row(jobs[c2], "failed"), "the breaking job")
        check(row[3] == "Tokenize numbers without a second pass" and row[4] == "Bob Chen",
              f"the breaking job's row: {row}")
        check(row[9] == "5 passed, 1 failed", f"the breaking job's tests: {row[9]}")
        # The one repository is the default one, shown as "-".
        check(row[5] == "-", f"the breaking job's repository: {row[5]!r}")
        # Branches columns: Repository, Branch, State, Since, Latest job.
        master = wait_row(browser, "branches", lambda r: r[1] == "master", "the master branch")
        check(master[0] == "-" and master[2] == "failing" and master[3] == f"{c2[:8]} by Bob Chen",
              f"the master branch shows {master}")
        wait_row(browser, "branches", lambda r: r[1] == "feature/power" and r[2] == "passing",
                 "feature/power shown as passing")
        # The repository selector offers every repository and the default one; choosing
        # the default one shows its jobs only (here: all of them).
        options = browser.evaluate("[...document.querySelectorAll('#repo option')]"
                                   ".map((o) => o.value)")
        check(options == ["", "-"], f"the repository selector offers {options}")
        browser.evaluate("(() => { const s = document.getElementById('repo'); s.value = '-';"
                         " s.dispatchEvent(new Event('change')); })()")
        def loaded():
            try:  # the page may be between two documents
                return browser.evaluate("location.search === '?repo=-' && "
                                        "document.readyState === 'complete'")
            except cdp.BrowserError:
                return False
        wait_until(loaded, "the default repository's page")
        wait_row(browser, "jobs", job_row(jobs[c2], "failed"), "the default repository's jobs")
        check(browser.evaluate("document.getElementById('repo').value") == "-",
              "the selector does not show the chosen repository")
        shown = {r[5] for r in table(browser, "jobs")}
        check(shown == {"-"}, f"the default repository's page shows repositories {shown}")
        # A branch's link: the dashboard with that branch's jobs only.
        link = browser.evaluate("[...document.querySelectorAll('#branches a')]"
                                ".find((a) => a.textContent === 'feature/power').href")
        browser.open(link)
        wait_row(browser, "jobs", job_row(jobs[feature], "passed"), "the feature branch's job")
        shown = [r[6] for r in table(browser, "jobs")]
        check(shown == ["feature/power"], f"the feature branch's page shows jobs of {shown}")
        check(browser.evaluate("document.getElementById('jobs-title').textContent")
              == "Recent jobs on feature/power", "the feature branch's page has no title")

        # The job page of the commit after the breaking one: the failing test, broken by
        # Bob's commit one commit earlier.
        browser.open(f"{base}/jobs/{jobs[c3]}")
        test = wait_row(browser, "tests", lambda r: "test_negative_numbers" in r[0],
                        "the failing test on the job page")
        check(test[1] == "failed", f"the failing test shows {test}")
        check(f"broken by {c2[:8]} by Bob Chen, 1 commit ago" in test[3],
              f"the failing test's notes: {test[3]!r}")
        passed = [r for r in table(browser, "tests") if r[1] == "passed"]
        check(len(passed) == 5, f"the passing tests shown: {passed}")
        # And on the breaking job's own page, "this commit".
        browser.open(f"{base}/jobs/{jobs[c2]}")
        test = wait_row(browser, "tests", lambda r: "test_negative_numbers" in r[0],
                        "the failing test on the breaking job's page")
        check(f"broken by {c2[:8]} by Bob Chen, this commit" in test[3],
              f"the breaking test's notes: {test[3]!r}")

        # A running job: the dashboard, left open, shows it running without a reload.
        browser.open(base + "/")
        browser.evaluate("window.notReloaded = true")
        # The live job: prints a line, waits for the gate, prints another, then runs the
        # suite.
        run_script = ("#!/bin/sh\n"
                      "echo 'warming the cache'\n"
                      f"while [ ! -e '{gate}' ]; do sleep 0.05; done\n"
                      "echo 'cache warm, running the suite'\n"
                      "exec python3 -m unittest discover -s tests -v\n")
        live = repo.commit("alice", "Fix negative numbers in the tokenizer",
                           {"calc.py": calc(RIGHT, [("//", "lambda a, b: a // b")]),
                            ".ci/run": run_script})
        jobs[live] = cluster.wait_job(live)["id"]
        live_job.append(jobs[live])
        wait_row(browser, "jobs", job_row(jobs[live], "running"), "the live job shown as running")
        wait_row(browser, "runners", lambda r: r[1] == "busy" and r[2] == f"#{jobs[live]}",
                 "a runner shown busy with the live job")
        check(browser.evaluate("window.notReloaded === true"), "the dashboard was reloaded")
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        browser.screenshot(args.screenshot)
        print(f"screenshot: {args.screenshot}")

        # Its job page shows the first line, then the next one as soon as it is printed.
        browser.open(f"{base}/jobs/{jobs[live]}")
        browser.wait_for("document.getElementById('log').textContent.includes('warming the cache')",
                         "the live job's first log line")
        log = browser.evaluate("document.getElementById('log').textContent")
        check("cache warm" not in log, f"the second line before the gate opened: {log!r}")
        browser.evaluate("window.notReloaded = true")
        gate.write_text("")
        browser.wait_for(
            "document.getElementById('log').textContent.includes('cache warm, running the suite')",
            "the live job's next log line")
        check(browser.evaluate("window.notReloaded === true"), "the job page was reloaded")
        # Then its end: passed, its tests listed, the log complete.
        browser.wait_for("[...document.querySelectorAll('#summary .status')]"
                         ".some((e) => e.textContent === 'passed')", "the live job to pass")
        wait_row(browser, "tests", lambda r: "test_negative_numbers" in r[0] and r[1] == "passed",
                 "the fixed test shown as passed")
        browser.wait_for("document.getElementById('log').textContent.includes('OK')",
                         "the end of the live job's log")
        check(browser.evaluate("window.notReloaded === true"), "the job page was reloaded")
    except Exception:
        if browser:
            try:
                failure = args.screenshot.parent / "failure.png"
                browser.screenshot(failure)
                print(f"the page at the failure: {failure}\n{browser.text()[:3000]}")
                print("its requests:", browser.evaluate(
                    "performance.getEntriesByType('resource').map((e) => e.name + ' ' + "
                    "Math.round(e.startTime) + '-' + Math.round(e.responseEnd))"))
            except Exception as e:
                print(f"no screenshot of the failure: {e}")
        if live_job:
            try:
                url = f"http://127.0.0.1:{cluster.http}/api/jobs/{live_job[0]}/log"
                with urllib.request.urlopen(url, timeout=10) as r:
                    print(f"the live job's log: {dict(r.headers)}\n{r.read()[:2000]!r}")
            except Exception as e:
                print(f"the live job's log: {e}")
        print(cluster.logs())
        raise
    finally:
        if browser:
            browser.close()
        cluster.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, required=True, help="the build's bin folder")
    parser.add_argument("--work", type=Path, required=True,
                        help="a folder for the run (emptied first)")
    parser.add_argument("--screenshot", type=Path, required=True,
                        help="where to save the dashboard's screenshot")
    parser.add_argument("--height", type=int, default=760, help="the window's height")
    parser.add_argument("--update-docs", action="store_true",
                        help="also copy the screenshot to docs/dashboard.png")
    args = parser.parse_args()
    args.bin = args.bin.resolve()
    args.screenshot = args.screenshot.resolve()

    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        print("SKIPPED: no chromium installed (scripts/install-deps.sh --with-test-tools "
              "installs it)")
        return SKIPPED
    sys.path.insert(0, str(HERE))
    import cdp

    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    try:
        run(args, work, cdp)
    except (TestFailure, cdp.BrowserError) as e:
        print(f"FAILED: {e}")
        return 1
    if args.update_docs:
        shutil.copyfile(args.screenshot, SOURCE_DIR / "docs" / "dashboard.png")
        print(f"copied to {SOURCE_DIR / 'docs' / 'dashboard.png'}")
    print(f"passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
