#!/usr/bin/env bash
# The whole pulse test suite, as CI runs it: formatting, go vet, every test
# with the race detector, and a short run of every fuzz target. It installs
# what the tests need and is missing.
#
#   ./scripts/test.sh                 # everything
#   FUZZTIME=5m ./scripts/test.sh     # fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
if ! command -v go >/dev/null 2>&1; then
  echo "Go is not installed: get Go 1.26 or newer from https://go.dev/dl/" >&2
  exit 1
fi
# go.mod asks for Go 1.26; an older go command (1.21 and later) fetches that
# toolchain from the module proxy by itself.
go version

step "chromium"
# The dashboard's browser test (httpapi/browser_test.go) drives a headless
# Chromium; it skips without one on a developer's machine, and fails in CI.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1; then
  : # installed already
elif command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  echo "installed $(command -v chromium)"
else
  echo "no chromium and no apt-get: the browser test will skip (or fail under CI=true)" >&2
fi

step "redis-server"
# The cluster tests (redis/, and the dashboard's and pulse ls's store-outage
# tests in httpapi/ and cmd/pulse/) start a throwaway redis-server on a loopback
# port; they skip without one on a developer's machine, and fail in CI.
if command -v redis-server >/dev/null 2>&1; then
  : # installed already
elif command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  echo "installed $(command -v redis-server)"
else
  echo "no redis-server and no apt-get: the cluster tests will skip (or fail under CI=true)" >&2
fi

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-ed:" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "go vet"
go vet ./...

step "go test -race"
go test -race -count=1 ./...

step "fuzz, $fuzztime per target"
# every "func FuzzX(" in a _test.go file, run in its package: among them
# wire's FuzzParse, FuzzParseReply, FuzzReader, FuzzSplitter and
# FuzzHelloOptions, server's FuzzHandshake (bytes in, answers out, on both
# transports) and arrivals' FuzzReader. scripts/fuzz runs any of them for
# longer: scripts/fuzz 30m
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "$pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/pulse-fuzz.log 2>&1 || {
      cat /tmp/pulse-fuzz.log >&2
      echo "fuzz target $target in $pkg failed; the input is saved under $pkg/testdata/fuzz" >&2
      exit 1
    }
    tail -n 3 /tmp/pulse-fuzz.log | grep -E 'execs|^ok' || true
  done
done

step "all tests passed"
