"""Plans: waves of tasks with owned files, exit contracts and validation, compiled into a repo's
graph and closed by the integration → documentation → evaluation stages (docs/plans.md).

Sits above ``fleet`` (its roles draft and close waves, its supervisor runs them) and below
``control``; imports nothing above it.
"""
