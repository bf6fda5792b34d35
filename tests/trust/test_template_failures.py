"""Issue 11, class 11: a template that cannot render is refused when saved, and skipped
(with a log entry) at fetch time, never failing the channel.

Some templates only fail with some values: they are rendered at save time with the sample
values and with sparse ones (no name, empty subject), as real mail brings them. One that
fails only on a rare value, or that was stored by an older eddymail, costs its own
notification and nothing else.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.trust.conftest import letters, raw_mail

HEADER = "Subject: [#{{ ticket.id }}] Registered\n\n"
FAILING_AT_RENDER = {
    "division by zero": "{{ ticket.id // (ticket.id - ticket.id) }}",
    "first letter of a missing name": "Dear {{ user.name[0] }}.",
    "second word of an empty subject": "About: {{ ticket.subject.split()[1] }}",
    "format of a name as a number": "{{ '%d' % user.name }}",
    "a range over the limit": "{% for i in range(50000) %}.{% endfor %}",
    "a width from a value": "{{ '{:>{}}'.format('x', ticket.id * 1000) }}",
    "undefined attribute of a value": "{{ user.email.nothing.deeper }}",
}


@pytest.mark.parametrize("body", FAILING_AT_RENDER.values(), ids=FAILING_AT_RENDER.keys())
@pytest.mark.parametrize("template", ["reply", "registration"])
def test_a_template_that_cannot_render_is_not_saved(eddymail, support, tmp_path, body,
                                                    template):
    if template == "registration" and ("user." in body or "subject" in body):
        body = body.replace("user.name", "helpdesk.name").replace("ticket.subject",
                                                                  "department.name")
        body = body.replace("user.email", "helpdesk.name")
    source = tmp_path / f"{template}.txt"
    source.write_text(HEADER + body + "\n")
    refused = eddymail("template", "edit", template, "--file", str(source), code=2)
    assert "nothing saved" in refused.stderr
    shown = eddymail.json("template", "show", template)["template"]
    assert shown["customised"] is False


def test_a_template_that_renders_is_saved(eddymail, support, tmp_path):
    source = tmp_path / "reply.txt"
    source.write_text(HEADER + "{% if user.name %}Dear {{ user.name[0] }}.{% endif %}\n"
                      "{{ ticket.subject.split()[:1] | join }}\n{{ reply.body }}\n")
    eddymail("template", "edit", "reply", "--file", str(source))
    assert eddymail.json("template", "show", "reply")["template"]["customised"]


def test_at_fetch_time_a_failing_template_skips_its_mail_only(eddymail, helpdesk, dovecot,
                                                              smtp_server, tmp_path):
    """Fails only for ticket #2: saved (the samples are fine), skipped once at fetch."""
    source = tmp_path / "registration.txt"
    source.write_text(HEADER + "Your number: {{ 100 // (ticket.id - 2) }}\n")
    eddymail("template", "edit", "registration", "--file", str(source))
    for number in range(3):
        dovecot.deliver(helpdesk, raw_mail(f"P{number} <p{number}@customer.example>",
                                           f"Question {number}"))
    (report,) = eddymail.json("fetch")["channels"]
    assert report["ok"] and report["new_tickets"] == 3, report
    assert sorted(str(letter["To"]) for letter in letters(smtp_server, 2)) == [
        "p0@customer.example", "p2@customer.example"]
    (entry,) = [e for e in eddymail.json("log")["entries"] if "not sent" in e["message"]]
    assert "ticket #2" in entry["message"] and "ZeroDivisionError" in entry["message"]
    assert "template edit registration" in entry["hint"]


def test_a_broken_template_stored_by_an_older_version_fails_no_fetch(
        eddymail, helpdesk, dovecot, database_path):
    with sqlite3.connect(database_path) as connection:
        connection.execute(
            "INSERT INTO template (name, language, source, enabled, updated_at) "
            "VALUES ('registration', 'en', ?, 1, '2026-01-01')",
            (HEADER + "{{ user.name[0] }} {{ 1 // 0 }}\n",))
    for number in range(2):
        dovecot.deliver(helpdesk, raw_mail(f"p{number}@customer.example", f"Q{number}"))
    first = eddymail("-q", "fetch")
    assert first.stderr == "" and first.stdout == ""
    dovecot.deliver(helpdesk, raw_mail("p9@customer.example", "Q9"))
    (report,) = eddymail.json("fetch")["channels"]
    assert report["ok"] and report["new_tickets"] == 1
    assert len(eddymail.json("ticket", "list")["tickets"]) == 3
    skipped = [e for e in eddymail.json("log")["entries"] if "not sent" in e["message"]]
    assert len(skipped) == 3
