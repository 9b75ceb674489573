"""Customers: known shoppers, their devices and the identities that merge visitors into them."""
