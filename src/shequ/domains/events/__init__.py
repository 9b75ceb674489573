"""Events: ingestion of behaviour events from the shop's apps and from files."""
