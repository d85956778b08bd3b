"""What the SES tests share beyond fixtures: the dummy credentials and the channel options
for the fake. A module of its own (not conftest) so that a test run over several plugins'
folders, each with a conftest, still imports these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onetomany.model import Message
from onetomany_ses import SesChannel

ACCESS_KEY_ID = "AKIAONETOMANYTEST01"
SECRET_ACCESS_KEY = "ses-secret-7Hq2vL9xPz4Kd8Wm3Rt6Yb1Nc5"


def ses_options(url: str, **options: Any) -> dict[str, Any]:
    """The test defaults of an SES channel talking to the fake at ``url``."""
    defaults: dict[str, Any] = {
        "region": "eu-west-1",
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "endpoint_url": url,
        "sender": "Success Team <success@example.com>",
        "timeout": 0.5,
        "connect_timeout": 0.5,
    }
    return defaults | options


MakeChannel = Callable[..., SesChannel]
MakeMessage = Callable[..., Message]
