"""`speedrift selftest chaos`: the permanent chaos and fuzz suite, run against real processes.

Job: in a temporary directory, within a time budget, attack a small real ecosystem the way a bad
day would — kill -9 of the hub, the services, their workers and the agents at random instants and
at every landing step (:mod:`.fleet`); speedrift and wg-protocol writers hammering one graph
(:mod:`.writers`); a full disk and a read-only filesystem under the graph and the hub's ledger
(:mod:`.diskfull`); the hypothesis fuzz suite with a larger example count (:mod:`.fuzz`);
forbidden git operations through the hub's authority contract and by the agents
(:mod:`.forbidden`) — then sweep every file speedrift wrote for the secret values planted in its
environment (:mod:`.planted`) and report the figures (:mod:`.figures`).

Invariant: every figure is counted from what is on disk and what the processes printed, never
assumed; a violation is a real broken invariant (each kind counted on its own) and fails the run.
Nothing outside the run's temporary directory is touched, and only processes the run started (its
own descendants, checked by start time) are ever signalled.

This package sits in the cli layer: it drives speedrift's commands as separate processes and may
read any layer below to check what they left.
"""
