import io
import json
import sys

import structlog

from adapters.cli.logs import configure_logging
from adapters.ib.accounts import mask, redact_text


def test_mask_and_redaction_of_account_ids():
    assert mask("DU1234567") == "DU*****67"
    assert redact_text("Order(account='DU1234567', orderRef='x') U7654321") == "Order(account='DU*****67', orderRef='x') U7****21"
    assert redact_text("conId=416904 strike=4500") == "conId=416904 strike=4500"


def test_json_logs_never_carry_a_full_account_id(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging(json=True)
    structlog.get_logger("t").warning("ib_async_log", message="Canceled order: Trade(order=Order(account='DU1234567'))")
    rec = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert "DU1234567" not in buf.getvalue() and "DU*****67" in rec["message"]
