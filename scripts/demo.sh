#!/usr/bin/env bash
# The chapter's walkthrough, end to end, in one command: builds the project, makes a
# master repository from example_tests/ with the clones the daemons need, starts the
# dispatcher, the reporter (the dashboard), two runners and the observer, makes a
# commit, waits for its result file and prints it, and the job as the dashboard's API
# shows it. With --keep the daemons stay up afterwards. BUILD_DIR (default build) is
# the build folder, as for scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) echo "usage: scripts/demo.sh [--keep]"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (usage: scripts/demo.sh [--keep])" >&2; exit 2 ;;
  esac
done

start_ms=$(date +%s%3N)
scripts/install-deps.sh
scripts/build.sh >/dev/null
bin="$root/${BUILD_DIR:-build}/bin"

work=$(mktemp -d "${TMPDIR:-/tmp}/ci-demo-XXXXXX")
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  if [[ $keep -eq 0 ]]; then
    stop_all
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Waits up to $2 seconds for the command $1 to succeed.
wait_for() {
  local deadline=$(( $(date +%s) + $2 ))
  until eval "$1" >/dev/null 2>&1; do
    if [[ $(date +%s) -ge $deadline ]]; then
      echo "demo.sh: timed out waiting for: $1" >&2
      for log in "$work"/*.log; do echo "--- $log"; tail -n 20 "$log"; done >&2
      exit 1
    fi
    sleep 0.05
  done
}

export GIT_AUTHOR_NAME="CI Demo" GIT_AUTHOR_EMAIL="demo@example.com"
export GIT_COMMITTER_NAME="CI Demo" GIT_COMMITTER_EMAIL="demo@example.com"

echo "== master repository and clones in $work"
git init -q -b master "$work/test_repo"
cp -r example_tests "$work/test_repo/tests"
git -C "$work/test_repo" add tests
git -C "$work/test_repo" commit -q -m "add tests"
git clone -q "$work/test_repo" "$work/test_repo_clone_obs"
git clone -q "$work/test_repo" "$work/test_repo_clone_runner1"
git clone -q "$work/test_repo" "$work/test_repo_clone_runner2"

cd "$work"
echo "== starting the dispatcher, the reporter, two runners and the observer"
"$bin/ci-dispatcher" --port 0 --results-dir "$work/test_results" >dispatcher.log 2>&1 &
pids+=($!)
wait_for "grep -q 'listening on' dispatcher.log" 20
port=$(grep -o 'listening on [^ ,]*' dispatcher.log | head -n1 | sed 's/.*://')
server="localhost:$port"
"$bin/ci-reporter" --dispatcher-server "$server" --db "$work/reporter.db" \
  --http 127.0.0.1:0 >reporter.log 2>&1 &
pids+=($!)
wait_for "grep -q 'ci-reporter listening on' reporter.log" 20
http_port=$(grep -o 'ci-reporter listening on [^ ,]*' reporter.log | head -n1 | sed 's/.*://')
dashboard="http://127.0.0.1:$http_port/"
echo
echo "   dashboard: $dashboard"
echo
for i in 1 2; do
  "$bin/ci-runner" --dispatcher-server "$server" "$work/test_repo_clone_runner$i" \
    >"runner$i.log" 2>&1 &
  pids+=($!)
done
wait_for "[ \$('$bin/cictl' --dispatcher-server $server status | awk '/^runners /{print \$2}') -ge 2 ]" 20
"$bin/ci-observer" --dispatcher-server "$server" --interval 1 "$work/test_repo_clone_obs" \
  >observer.log 2>&1 &
pids+=($!)
wait_for "grep -q 'first look' observer.log" 20
"$bin/cictl" --dispatcher-server "$server" runners

echo "== committing a change to the master repository"
cd "$work/test_repo"
touch new_file
git add new_file
git commit -q -m "new file" new_file
commit=$(git rev-parse HEAD)
echo "commit $commit"
cd "$work"

wait_for "[ -f '$work/test_results/$commit' ]" 60
echo "== test_results/$commit"
cat "$work/test_results/$commit"
# The same job as the reporter's API shows it, once its read model has it finished.
job_of_commit() {
  python3 - "${dashboard}api/commits/$commit" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    jobs = json.load(r)["jobs"]
job = next(j for j in jobs if j["status"] is not None)
print(f"job {job['id']} {job['status']}: {job['tests_run']} tests run, "
      f"{job['tests_failed']} failed, on {job['runner']} ({job['subject']})")
EOF
}
wait_for job_of_commit 30
echo "== ${dashboard}api/commits/$commit"
job_of_commit
echo "=="
elapsed=$(( $(date +%s%3N) - start_ms ))
printf 'demo finished in %d.%03d s\n' $((elapsed / 1000)) $((elapsed % 1000))

if [[ $keep -eq 1 ]]; then
  echo
  echo "The daemons are still running (dispatcher on $server); logs are in $work."
  echo "  dashboard:    $dashboard"
  echo "  watch them:   $bin/cictl --dispatcher-server $server jobs"
  echo "  commit more:  cd $work/test_repo && touch another && git add another && git commit -m more"
  echo "  stop them:    kill ${pids[*]}; rm -rf $work"
fi
