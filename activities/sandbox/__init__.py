"""The sandbox that runs untrusted code: the `run_tests` activity (pytest on a request's files, in bubblewrap).

`_activity` is the activity (files, result, errors), `_command` the bubblewrap command line (namespaces,
mounts, uid, limits), `_process` the bounded run (wall time, output cap, kill), `_report` the TestReport.
"""

from activities.sandbox._activity import SandboxActivities, unavailable

__all__ = ["SandboxActivities", "unavailable"]
