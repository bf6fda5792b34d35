"""`eddymail channel test` against a real Dovecot and a real SMTP server on loopback."""

from __future__ import annotations

import email
import socket

import keyring
import pytest
from keyring.backends import fail


@pytest.fixture
def mailbox(eddymail, support, dovecot, mail_user, smtp_server):
    """Returns a function adding a channel for the test user with the given security."""
    smtp_server.add_user(mail_user.login, mail_user.password)

    def add(name: str = "support", *, protocol: str = "imap", security: str = "starttls",
            smtp_security: str = "starttls", ca_file: bool = True, password: str | None = None,
            extra: tuple[str, ...] = ()):
        ports = {("imap", "starttls"): dovecot.imap_port, ("imap", "ssl"): dovecot.imaps_port,
                 ("pop3", "starttls"): dovecot.pop3_port, ("pop3", "ssl"): dovecot.pop3s_port}
        smtp_port = smtp_server.port if smtp_security == "starttls" else smtp_server.smtps_port
        options = [
            "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", protocol, "--host", dovecot.host,
            "--port", str(ports[(protocol, security)]), "--security", security,
            "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_port),
            "--smtp-security", smtp_security, *extra,
        ]
        if ca_file:
            options += ["--ca-file", str(dovecot.pki.ca_file)]
        return support(name, *options, password=password or mail_user.password)

    return add


def test_imap_starttls_and_smtp_pass_and_the_letter_arrives(eddymail, mailbox, dovecot,
                                                            mail_user, smtp_server):
    dovecot.deliver(mail_user, b"Subject: one\r\n\r\nbody\r\n")
    dovecot.deliver(mail_user, b"Subject: two\r\n\r\nbody\r\n", seen=True)
    mailbox()
    report = eddymail.json("channel", "test", "support")
    (channel,) = report["channels"]
    assert channel["ok"] is True and channel["name"] == "support"
    checks = {c["check"]: c for c in channel["checks"]}
    assert checks["incoming"]["ok"] and checks["outgoing"]["ok"]
    assert "INBOX: 2 message(s), 1 unread" in checks["incoming"]["answer"]
    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == [mail_user.address] and received.tls
    assert received.login == mail_user.login
    letter = email.message_from_bytes(received.data)
    assert channel["token"] in letter["Subject"]
    assert letter["Auto-Submitted"] == "auto-replied"
    assert channel["token"] in checks["outgoing"]["answer"]
    # Testing read nothing: the unread message is still unread.
    flags = {m.raw.split(b"\r\n")[0]: m.flags for m in dovecot.messages(mail_user)}
    assert "\\Seen" not in flags[b"Subject: one"]
    assert eddymail.json("log") == {"entries": []}


def test_imaps_and_smtps(eddymail, mailbox, smtp_server):
    mailbox(security="ssl", smtp_security="ssl")
    report = eddymail.json("channel", "test", "--all")
    assert report["channels"][0]["ok"] is True
    assert smtp_server.wait_for(1)[0].tls


def test_pop3s(eddymail, mailbox, dovecot, mail_user):
    dovecot.deliver(mail_user, b"Subject: pop\r\n\r\nbody\r\n")
    mailbox(protocol="pop3", security="ssl")
    checks = eddymail.json("channel", "test", "support", "--no-send")["channels"][0]["checks"]
    incoming = next(c for c in checks if c["check"] == "incoming")
    assert incoming["ok"] and incoming["answer"].startswith("1 message(s)")


def test_pop3_stls(eddymail, mailbox):
    mailbox(protocol="pop3", security="starttls")
    assert eddymail.json("channel", "test", "--no-send")["channels"][0]["ok"] is True


def test_no_send_only_logs_in(eddymail, mailbox, smtp_server):
    mailbox()
    report = eddymail.json("channel", "test", "support", "--no-send")
    outgoing = next(c for c in report["channels"][0]["checks"] if c["check"] == "outgoing")
    assert outgoing["ok"] and "no letter sent" in outgoing["answer"]
    assert smtp_server.received == []


def test_wrong_password_exit_3_logged_with_answer_and_app_password_hint(
        eddymail, mailbox, mail_user):
    mailbox(password="wrong-password", extra=("--preset", "gmail"))
    result = eddymail("channel", "test", "support", "--json", code=3)
    report = __import__("json").loads(result.stdout)
    checks = {c["check"]: c for c in report["channels"][0]["checks"]}
    assert checks["incoming"]["ok"] is False
    assert "AUTHENTICATIONFAILED" in checks["incoming"]["answer"]
    assert "app password" in checks["incoming"]["hint"]
    assert "Gmail" in checks["incoming"]["hint"]
    assert checks["outgoing"]["ok"] is False and "535" in checks["outgoing"]["answer"]
    assert "Channel test failed for: support" in result.stderr
    entries = eddymail.json("log", "--channel", "support")["entries"]
    assert len(entries) == 2
    imap_entry = next(e for e in entries if e["operation"].startswith("imap"))
    assert "AUTHENTICATIONFAILED" in imap_entry["answer"]
    assert "app password" in imap_entry["hint"]
    for entry in entries:
        assert "wrong-password" not in repr(entry)


def test_closed_port_has_its_own_clear_message(eddymail, support, mail_user):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    support("dead", "--email", mail_user.address, "--host", "127.0.0.1", "--port", str(closed),
            "--security", "ssl", "--smtp-host", "127.0.0.1", "--smtp-port", str(closed))
    result = eddymail("channel", "test", "dead", "--json", "--timeout", "5", code=3)
    checks = __import__("json").loads(result.stdout)["channels"][0]["checks"]
    for check in checks:
        assert check["ok"] is False
        assert "refused" in check["answer"].lower()
        assert "firewall" in check["hint"]


def test_self_signed_certificate_fails_then_passes_with_the_ca_file(eddymail, mailbox, dovecot):
    mailbox(security="ssl", ca_file=False)
    result = eddymail("channel", "test", "support", "--no-send", "--json", code=3)
    checks = __import__("json").loads(result.stdout)["channels"][0]["checks"]
    incoming = next(c for c in checks if c["check"] == "incoming")
    assert "certificate" in incoming["answer"].lower()
    assert "--ca-file" in incoming["hint"]
    eddymail("channel", "edit", "support", "--ca-file", str(dovecot.pki.ca_file))
    assert eddymail.json("channel", "test", "support", "--no-send")["channels"][0]["ok"]


def test_table_output_for_people(eddymail, mailbox):
    mailbox()
    result = eddymail("channel", "test", "support", "--no-send")
    assert "incoming" in result.stdout and "ok" in result.stdout


def test_missing_keyring_password_is_a_failed_check(eddymail, mailbox, memory_keyring):
    mailbox()
    keyring.delete_password("eddymail", "support")
    result = eddymail("channel", "test", "support", "--json", code=3)
    check = __import__("json").loads(result.stdout)["channels"][0]["checks"][0]
    assert check["check"] == "password" and "eddymail channel password support" in check["answer"]


def test_headless_keyring_exits_4_with_one_line(eddymail, mailbox):
    mailbox()
    keyring.set_keyring(fail.Keyring())
    result = eddymail("channel", "test", "support", code=4)
    assert [line for line in result.stderr.splitlines() if line.startswith("Error")] == [
        result.stderr.strip().splitlines()[-1]]
    assert "PYTHON_KEYRING_BACKEND" in result.stderr and "Traceback" not in result.stderr


def test_password_command_is_used(eddymail, support, dovecot, mail_user, tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text(mail_user.password + "\n")
    support("cmd", "--email", mail_user.address, "--login", mail_user.login,
            "--host", dovecot.host, "--port", str(dovecot.imaps_port), "--security", "ssl",
            "--ca-file", str(dovecot.pki.ca_file), "--password-command", f"cat {secret_file}",
            password=None)
    assert eddymail.json("channel", "test", "cmd")["channels"][0]["ok"] is True
