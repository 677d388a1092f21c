"""The CodingTask workflow and its contract: what the supervisor decides (plan, agents, gates, budget, feedback),
with the models every process shares; no I/O (it runs in Temporal's sandbox and replays)."""
