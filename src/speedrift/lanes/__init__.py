"""Drift lanes: checks that read a repo (its tree, a diff range, a task, the task graph) and say
what went wrong in it as findings in the lane SDK's JSON shape; the guard turns actionable
findings into deduplicated, budgeted corrective tasks.

Layer: above graph, repo, agents and gates (a lane reuses the gates' detectors and the sandbox),
below fleet (a blocking lane can hold a landing) and the hub (which schedules lanes).
"""
