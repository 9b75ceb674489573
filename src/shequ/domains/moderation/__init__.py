"""Content safety and crisis response (SPEC M7.1, M7.3): verdicts, the review queue,
the lexicon the console manages, negative-sentiment bursts and incidents."""
