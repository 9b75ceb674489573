"""Load the text models once at process start, so no request pays for them."""

from __future__ import annotations

from shequ.text import content_types, sentiment
from shequ.text.normalise import normalise
from shequ.text.tokenise import default_tokeniser


def warm_up() -> None:
    """Initialise jieba's dictionary (the shared tokeniser), the OpenCC converter and the
    shipped sentiment and content-type models; later calls find them loaded."""
    normalise("預熱")
    default_tokeniser().tokens("预热")
    sentiment.default_model()
    content_types.default_model()
