"""warm_up loads the shared tokeniser and the shipped models once."""

from __future__ import annotations

from shequ.text import content_types, sentiment
from shequ.text.tokenise import default_tokeniser
from shequ.text.warmup import warm_up


def test_warm_up_loads_the_shared_models_once() -> None:
    warm_up()
    loaded = (default_tokeniser(), sentiment.default_model(), content_types.default_model())
    warm_up()
    assert (default_tokeniser(), sentiment.default_model(),
            content_types.default_model()) == loaded
    assert default_tokeniser().tokens("烟酰胺精华很好用")[0] == "烟酰胺"
