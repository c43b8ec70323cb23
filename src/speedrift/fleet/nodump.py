"""Imported for its effect, by the attempt forkserver only (``fleet/workers.py`` preloads it first).

Job: the forkserver is started once per supervisor with the supervisor's environment — every
credential the supervisor holds — and lives as long as the supervisor, so it makes itself
non-dumpable as it starts (:func:`speedrift.procs.make_non_dumpable`), as the supervisor did.
Invariant: every worker it forks inherits that, so no attempt's process can be read through
``/proc`` or ptraced by another process of the same user. Nothing else imports this module.
"""

from __future__ import annotations

from speedrift.procs import make_non_dumpable

make_non_dumpable()
