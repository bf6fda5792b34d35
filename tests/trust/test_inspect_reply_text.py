"""Issue 11, parsing fidelity: ``mail inspect --json`` reports ``reply_text``, the new text of
a reply without its quoted history, exactly as ``ticket show`` folds it."""

from __future__ import annotations

import json

import pytest

from tests.mailfactory import make_mail

REPLIES = {
    "gmail": ("Thanks, it works now.\n\nOn Mon, 30 Nov 2026 at 10:00, Support "
              "<help@example.test> wrote:\n> Please restart it.\n> Regards\n"),
    "russian client": ("Спасибо, заработало.\n\n30.11.2026 10:00, Служба поддержки пишет:\n"
                       "> Перезагрузите его.\n"),
    "outlook": ("Still broken.\n\n-----Original Message-----\nFrom: Support\n"
                "Sent: Monday\nSubject: Printer\n\nPlease restart it.\n"),
    "no history": "Just one line, nothing quoted.\n",
    "quoted lines only": "> old text\n> more old text\n",
}


@pytest.mark.parametrize("body", REPLIES.values(), ids=REPLIES.keys())
def test_reply_text_is_what_ticket_show_folds(eddymail, support, tmp_path, body):
    source = tmp_path / "reply.eml"
    source.write_bytes(make_mail("Re: Printer", body=body))
    inspected = json.loads(eddymail("mail", "inspect", str(source), "--json").stdout)
    eddymail("ingest", "--department", "Support", str(source))
    (message,) = eddymail.json("ticket", "show", "1")["ticket"]["messages"]
    assert inspected["reply_text"] == message["new_text"]
    assert ">" not in inspected["reply_text"] or body.startswith(">")
    assert "Please restart" not in inspected["reply_text"]
