"""Chinese text processing (normalise, tokenise, sentiment, near-duplicates) lives here."""
