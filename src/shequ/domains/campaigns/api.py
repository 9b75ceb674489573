"""The campaigns domain's HTTP routes: one router per area under one root."""

from __future__ import annotations

from fastapi import APIRouter

from shequ.domains.campaigns.campaign_api import router as campaign_router
from shequ.domains.campaigns.coupon_api import router as coupon_router
from shequ.domains.campaigns.group_api import router as group_router
from shequ.domains.campaigns.referral_api import router as referral_router

router = APIRouter()
for _area in (campaign_router, group_router, coupon_router, referral_router):
    router.include_router(_area)
