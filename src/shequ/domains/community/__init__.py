"""Creators and community hubs: the KOC certification ladder, the academy, the creator
dashboard, the creator fund, core-creator retention and hub memberships with feeds and
figures (docs/creators.md)."""
