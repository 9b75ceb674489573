"""Pure maths without I/O (RFM, CLV, A/B tests, anomaly detection) lives here."""
