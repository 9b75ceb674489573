"""Customer insight: RFM, CLV and the five-tier value matrix per customer, profile tags,
and the 360° view that gathers every domain's facts about one customer."""
