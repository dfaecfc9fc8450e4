"""stepstone_operator: the kopf operator that runs WorkflowRuns in runner pods."""
