"""The campaigns domain's public face: its area services, imported together so that every
order-transition hook they register (coupons returned on cancel, commissions accrued and
clawed back, group orders) is in place whichever entry point runs (``registry.load_hooks``).

Other domains and the entrypoints call the area modules through this one:
``service.groups``, ``service.coupons``, ``service.referrals``, ``service.invites``,
``service.campaigns``, ``service.calendar``.
"""

from __future__ import annotations

from shequ.domains.campaigns import calendar, coupons, groups, invites, referrals
from shequ.domains.campaigns import campaign_service as campaigns

__all__ = ["calendar", "campaigns", "coupons", "groups", "invites", "referrals"]
