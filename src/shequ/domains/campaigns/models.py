"""The campaigns domain's tables, one module per area (imported here so that
``registry.load_models`` sees them all)."""

from shequ.domains.campaigns.campaign_models import *  # noqa: F403
from shequ.domains.campaigns.coupon_models import *  # noqa: F403
from shequ.domains.campaigns.group_models import *  # noqa: F403
from shequ.domains.campaigns.referral_models import *  # noqa: F403
