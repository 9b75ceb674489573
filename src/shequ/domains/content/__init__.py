"""Content: community hubs, creators, UGC posts with comments, and product reviews."""
