"""Orders: the order state machine, stock-taking checkout and historical order imports."""
