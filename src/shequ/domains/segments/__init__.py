"""Saved customer segments: rules over the event store, members kept in the event store's
``segment_members``, size history, incremental refresh (docs/segments.md)."""
