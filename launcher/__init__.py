"""`make run`: the launcher that starts the whole stack on one machine and stops all of it (`python -m launcher.stack`),
and what it reads of Linux processes in /proc."""
