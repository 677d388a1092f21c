#!/bin/sh
# What the run_tests sandbox needs from the system: bubblewrap (bwrap) and util-linux's setpriv and prlimit.
# As root with apt-get, installs what is missing; otherwise says exactly what is missing and why. Then checks
# that bubblewrap can make its namespaces here. Never fails the install: without the sandbox, run_tests reports
# "sandbox unavailable" and runs no code (docs/operations.md, "Sandbox").
missing=""
command -v bwrap >/dev/null 2>&1 || missing=" bubblewrap"
if ! command -v setpriv >/dev/null 2>&1 || ! command -v prlimit >/dev/null 2>&1; then
  missing="$missing util-linux"
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing for the run_tests sandbox"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
      || echo "could not install$missing: run_tests will report 'sandbox unavailable'" >&2
  else
    echo "missing for the run_tests sandbox:$missing (not root, or no apt-get: nothing installed)." >&2
    echo "  install as root: apt-get install -y --no-install-recommends$missing" >&2
    echo "  until then run_tests reports 'sandbox unavailable' and runs no code" >&2
    exit 0
  fi
fi
# The same namespaces the sandbox asks for (as a plain user bubblewrap adds a user namespace itself).
if command -v bwrap >/dev/null 2>&1 \
  && ! err=$(bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts --ro-bind / / true 2>&1); then
  echo "bubblewrap cannot make its namespaces here: $err" >&2
  echo "  in a container: see docs/operations.md, 'Sandbox' (user namespaces, seccomp and AppArmor)" >&2
  echo "  until then run_tests reports 'sandbox unavailable' and runs no code" >&2
fi
exit 0
