#!/usr/bin/env bash
# The chapter's walkthrough, end to end, in one command: builds the project, makes a
# master repository from example_tests/ with the clones the daemons need, starts the
# dispatcher, two runners and the observer, makes a commit, waits for its result file
# and prints it. With --keep the daemons stay up afterwards.
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
bin="$root/build/bin"

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
echo "== starting the dispatcher, two runners and the observer"
"$bin/ci-dispatcher" --port 0 --results-dir "$work/test_results" >dispatcher.log 2>&1 &
pids+=($!)
wait_for "grep -q 'listening on' dispatcher.log" 20
port=$(grep -o 'listening on [^ ,]*' dispatcher.log | head -n1 | sed 's/.*://')
server="localhost:$port"
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
echo "=="
elapsed=$(( $(date +%s%3N) - start_ms ))
printf 'demo finished in %d.%03d s\n' $((elapsed / 1000)) $((elapsed % 1000))

if [[ $keep -eq 1 ]]; then
  echo
  echo "The daemons are still running (dispatcher on $server); logs are in $work."
  echo "  watch them:   $bin/cictl --dispatcher-server $server jobs"
  echo "  commit more:  cd $work/test_repo && touch another && git add another && git commit -m more"
  echo "  stop them:    kill ${pids[*]}; rm -rf $work"
fi
