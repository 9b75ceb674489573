"""Membership tiers (silver / gold / black-gold): qualification rules on rolling 12-month
spend or growth points, daily evaluation with upgrades, downgrades and a grace period, the
tier history, benefits per tier and per-tier figures (docs/membership.md)."""
