"""Campaigns and social commerce: campaigns and the shared calendar, group buying,
coupons, invite tasks and referrals (SPEC M3.1, M3.2, M5.3, M8.2)."""
