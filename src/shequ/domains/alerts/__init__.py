"""Alerts: three-colour rules over the stored metric values, their evaluation, the alert
history (acknowledge, resolve) and webhook and e-mail notifications."""
