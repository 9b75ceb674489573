"""Loyalty: the points ledger (double entry, lots, expiry), earn rules, rewards and
redemptions, and the signed one-time O2O codes stores verify."""
