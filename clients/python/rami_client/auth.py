"""The API key a client sends: `authorization: Bearer <key>` on every call, when the
coordinator has API keys (rami-coordinator --api_keys_file)."""
import os
from typing import Optional, Tuple

ENV = "RAMI_API_KEY"


def call_metadata(api_key: Optional[str]) -> Optional[Tuple[Tuple[str, str], ...]]:
    """api_key None: $RAMI_API_KEY; an empty key sends nothing."""
    key = os.environ.get(ENV, "") if api_key is None else api_key
    return (("authorization", "Bearer " + key),) if key else None
