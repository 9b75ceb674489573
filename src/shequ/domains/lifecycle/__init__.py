"""Customer lifecycle: stages from behaviour, daily snapshots, transitions, strategies."""
