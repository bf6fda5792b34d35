"""Proof that the real-server harness (tests/harness) behaves like real servers do, using the
standard library's own clients against it."""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import keyring
import keyring.errors
import pytest

from tests.harness import free_port
from tests.harness.certs import TestPKI
from tests.harness.dovecot import DovecotServer, MailUser, start_dovecot
from tests.harness.keyring_backend import MemoryKeyring
from tests.harness.smtp import SmtpServer


def _message(subject: str, body: str = "Hello.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "customer@example.org"
    msg["To"] = "support@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(body)
    return msg.as_bytes()


# -- certificates ----------------------------------------------------------------------------


def test_pki_server_cert_verifies_for_localhost_and_wrong_host_cert_does_not(
    pki: TestPKI,
) -> None:
    names = {}
    for wrong_host in (False, True):
        server_context = pki.server_context(wrong_host=wrong_host)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def serve(listener: socket.socket = listener, context: ssl.SSLContext = server_context):
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client gives up when verification fails
            finally:
                listener.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw, \
                    pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                names[wrong_host] = tls.getpeercert()["subjectAltName"]
        except ssl.SSLCertVerificationError as error:
            names[wrong_host] = error.verify_message
        thread.join(5)

    assert ("DNS", "localhost") in names[False]
    assert ("IP Address", "127.0.0.2") in names[False]
    assert "Hostname mismatch" in names[True]


# -- Dovecot: IMAP ---------------------------------------------------------------------------


def test_imap_starttls_login_and_select(
    dovecot: DovecotServer, mail_user: MailUser, pki: TestPKI
) -> None:
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl.create_default_context(cafile=pki.ca_file))
        assert imap.sock.version() in ("TLSv1.2", "TLSv1.3")
        typ, _ = imap.login(mail_user.login, mail_user.password)
        assert typ == "OK"
        typ, data = imap.select("INBOX")
        assert (typ, data) == ("OK", [b"0"])
    finally:
        imap.logout()


def test_imaps_login_sees_delivered_mail(
    dovecot: DovecotServer, mail_user: MailUser, pki: TestPKI
) -> None:
    dovecot.deliver(mail_user, _message("over imaps"))
    context = ssl.create_default_context(cafile=pki.ca_file)
    with imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=context,
                           timeout=10) as imap:
        imap.login(mail_user.login, mail_user.password)
        typ, data = imap.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])


def test_deliver_then_unseen_search_then_mark_seen(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    uids = [dovecot.deliver(mail_user, _message(f"ticket {n}")) for n in range(3)]
    assert uids == [1, 2, 3]
    already_read = dovecot.deliver(mail_user, _message("old"), seen=True)

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        imap.login(mail_user.login, mail_user.password)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", "UNSEEN")
        assert typ == "OK"
        assert [int(uid) for uid in data[0].split()] == uids

        dovecot.mark_seen(mail_user, [uids[0]])  # "read in webmail" on another connection
        imap.noop()
        _, data = imap.uid("SEARCH", "UNSEEN")
        assert [int(uid) for uid in data[0].split()] == uids[1:]

    dovecot.mark_seen(mail_user)
    stored = dovecot.messages(mail_user)
    assert [message.uid for message in stored] == [*uids, already_read]
    assert all("\\Seen" in message.flags for message in stored)


def test_messages_reads_without_setting_seen_and_keeps_content(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    raw = _message("Ünïcode subject", "Тело письма\n")
    uid = dovecot.deliver(mail_user, raw)
    first = dovecot.messages(mail_user)
    second = dovecot.messages(mail_user)
    assert [message.uid for message in first] == [uid]
    assert first[0].flags == set()
    assert second[0].flags == set()
    # IMAP stores CRLF line endings; otherwise the bytes are what was delivered.
    assert first[0].raw == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_deliver_creates_missing_folder(dovecot: DovecotServer, mail_user: MailUser) -> None:
    assert dovecot.folder_names(mail_user) == ["INBOX"]
    uid = dovecot.deliver(mail_user, _message("filed"), folder="Support Queue")
    assert uid == 1
    assert sorted(dovecot.folder_names(mail_user)) == ["INBOX", "Support Queue"]
    assert [m.uid for m in dovecot.messages(mail_user, "Support Queue")] == [1]
    assert dovecot.messages(mail_user) == []


def test_users_are_isolated_and_logins_unique(dovecot: DovecotServer) -> None:
    alice, bob = dovecot.create_user(), dovecot.create_user()
    assert alice.login != bob.login
    assert alice.address == f"{alice.login}@example.test"
    dovecot.deliver(alice, _message("for alice"))
    assert len(dovecot.messages(alice)) == 1
    assert dovecot.messages(bob) == []
    with pytest.raises(ValueError, match="already exists"):
        dovecot.create_user(alice.login)


def test_non_ascii_password_works_with_authenticate_plain(dovecot: DovecotServer) -> None:
    user = dovecot.create_user(password="pässwörd-ключ")
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        credentials = f"\0{user.login}\0{user.password}".encode()
        typ, _ = imap.authenticate("PLAIN", lambda _: credentials)
        assert typ == "OK"


def test_wrong_password_gives_server_answer_and_earns_no_penalty(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    for _attempt in range(3):
        with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
            with pytest.raises(imaplib.IMAP4.error) as failure:
                imap.login(mail_user.login, "not-the-password")
            assert "[AUTHENTICATIONFAILED] Authentication failed." in str(failure.value)

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        typ, _ = imap.login(mail_user.login, mail_user.password)
    assert typ == "OK"
    # With Dovecot's defaults every login after failures would wait 2-15 s: the failure
    # delay is off and anvil's table of penalised IPs stays empty (asked, not timed).
    config = str(dovecot.directory / "dovecot.conf")
    delay = subprocess.run(["doveconf", "-c", config, "-h", "auth_failure_delay"],
                           capture_output=True, text=True, check=True).stdout
    assert delay.strip() == "0"
    penalties = subprocess.run(["doveadm", "-c", config, "penalty"],
                               capture_output=True, text=True, check=True).stdout
    assert penalties.split("\n")[0].split()[:2] == ["IP", "penalty"]  # the table is there
    assert "127.0.0.1" not in penalties, penalties


def test_plaintext_login_refused_on_tls_required_host(
    dovecot: DovecotServer, mail_user: MailUser, pki: TestPKI
) -> None:
    host = dovecot.tls_required_host
    if host is None:
        pytest.skip("127.0.0.2 is not usable on this machine")
    with imaplib.IMAP4(host, dovecot.imap_port, timeout=10) as imap:
        assert "LOGINDISABLED" in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED|Plaintext auth"):
            imap.login(mail_user.login, mail_user.password)
        imap.starttls(ssl.create_default_context(cafile=pki.ca_file))
        assert imap.login(mail_user.login, mail_user.password)[0] == "OK"

    pop = poplib.POP3(host, dovecot.pop3_port, timeout=10)
    try:
        with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
            pop.user(mail_user.login)
            pop.pass_(mail_user.password)
    finally:
        pop.quit()


def test_untrusted_client_fails_certificate_verification(dovecot: DovecotServer) -> None:
    # A client using the system CA bundle must not accept the test CA's certificate.
    default = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=default, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=default, timeout=10)


# -- Dovecot: POP3 ---------------------------------------------------------------------------


def test_pop3_stls_and_pop3s_stat(
    dovecot: DovecotServer, mail_user: MailUser, pki: TestPKI
) -> None:
    for n in range(2):
        dovecot.deliver(mail_user, _message(f"pop {n}"))
    context = ssl.create_default_context(cafile=pki.ca_file)

    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context)
        pop.user(mail_user.login)
        pop.pass_(mail_user.password)
        count, size = pop.stat()
        assert count == 2
        assert size > 0
    finally:
        pop.quit()

    pop = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=context, timeout=10)
    try:
        pop.user(mail_user.login)
        pop.pass_(mail_user.password)
        assert pop.stat()[0] == 2
    finally:
        pop.quit()


def test_pop3_retr_marks_seen_at_quit(dovecot: DovecotServer, mail_user: MailUser) -> None:
    # Dovecot's POP3 sets \Seen on retrieved messages when the session ends with QUIT;
    # a POP3 fetcher therefore "reads" the mail for webmail users too.
    dovecot.deliver(mail_user, _message("pop then imap"))
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    pop.user(mail_user.login)
    pop.pass_(mail_user.password)
    pop.retr(1)
    assert "\\Seen" not in dovecot.messages(mail_user)[0].flags
    pop.quit()
    assert "\\Seen" in dovecot.messages(mail_user)[0].flags


def test_start_dovecot_reports_missing_binary(tmp_path: Path, pki: TestPKI) -> None:
    with pytest.raises(RuntimeError) as failure:
        start_dovecot(tmp_path, pki, binary=tmp_path / "no-dovecot")
    assert str(failure.value) == (
        "Dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d"
    )


# -- SMTP ------------------------------------------------------------------------------------


def test_smtp_starttls_auth_delivers(smtp_server: SmtpServer, pki: TestPKI) -> None:
    smtp_server.add_user("helpdesk", "s3cret")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # not before TLS
        client.starttls(context=ssl.create_default_context(cafile=pki.ca_file))
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        client.login("helpdesk", "s3cret")
        client.sendmail("helpdesk@example.test", ["customer@example.org"], _message("reply"))

    [mail] = smtp_server.wait_for(1)
    assert mail.mail_from == "helpdesk@example.test"
    assert mail.rcpt_tos == ["customer@example.org"]
    assert b"Subject: reply" in mail.data
    assert mail.login == "helpdesk"
    assert mail.tls is True
    assert mail.port == smtp_server.port


def test_smtps_with_auth(smtp_server: SmtpServer, pki: TestPKI) -> None:
    smtp_server.add_user("helpdesk", "s3cret")
    context = ssl.create_default_context(cafile=pki.ca_file)
    with smtplib.SMTP_SSL(smtp_server.host, smtp_server.smtps_port, context=context,
                          timeout=10) as client:
        client.ehlo()
        assert client.has_extn("auth")
        client.login("helpdesk", "s3cret")
        client.send_message(EmailMessage(), "a@example.test", ["b@example.org"])

    [mail] = smtp_server.wait_for(1)
    assert (mail.login, mail.tls, mail.port) == ("helpdesk", True, smtp_server.smtps_port)
    assert smtp_server.auth_attempts[-1].success


def test_smtp_wrong_password_gives_535(smtp_server: SmtpServer, pki: TestPKI) -> None:
    smtp_server.add_user("helpdesk", "s3cret")
    context = ssl.create_default_context(cafile=pki.ca_file)
    with smtplib.SMTP_SSL(smtp_server.host, smtp_server.smtps_port, context=context,
                          timeout=10) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login("helpdesk", "wrong")
        assert failure.value.smtp_code == 535
        assert failure.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        # Once a user exists, sending without AUTH is refused.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.test", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.smtp_code == 530
    assert smtp_server.received == []
    # smtplib tries each mechanism the server offers before giving up.
    assert {(a.login, a.success, a.tls) for a in smtp_server.auth_attempts} == {
        ("helpdesk", False, True)
    }
    assert {a.mechanism for a in smtp_server.auth_attempts} == {"PLAIN", "LOGIN"}


def test_smtp_auth_on_plain_port_needs_flag(
    smtp_server: SmtpServer, make_smtp_server: Callable[..., SmtpServer]
) -> None:
    relaxed = make_smtp_server(require_tls_for_auth=False)
    for server in (smtp_server, relaxed):
        server.add_user("u", "p")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.ehlo()
        code, message = client.docmd("AUTH", "PLAIN AHUAcA==")
        assert code == 538, message
    with smtplib.SMTP(relaxed.host, relaxed.port, timeout=10) as client:
        client.login("u", "p")
        client.sendmail("u@example.test", ["x@example.org"], b"Subject: p\r\n\r\nx\r\n")
    [mail] = relaxed.wait_for(1)
    assert (mail.login, mail.tls) == ("u", False)
    assert smtp_server.received == []


def test_smtp_stop_then_start_on_same_ports(smtp_server: SmtpServer) -> None:
    port, smtps_port = smtp_server.port, smtp_server.smtps_port
    idle = smtplib.SMTP(smtp_server.host, port, timeout=10)  # open while the server goes down
    smtp_server.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_server.host, port, timeout=2)
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        idle.noop()

    smtp_server.start()
    assert (smtp_server.port, smtp_server.smtps_port) == (port, smtps_port)
    with smtplib.SMTP(smtp_server.host, port, timeout=10) as client:
        client.sendmail("a@example.test", ["b@example.org"], b"Subject: back\r\n\r\nx\r\n")
    [mail] = smtp_server.wait_for(1)
    assert b"Subject: back" in mail.data
    assert mail.login is None


def test_smtp_queued_rejection_then_acceptance(smtp_server: SmtpServer) -> None:
    smtp_server.queue_data_response("451 4.3.0 Try again later")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as failure:
            client.sendmail("a@example.test", ["b@example.org"], b"Subject: 1\r\n\r\nx\r\n")
        assert failure.value.smtp_code == 451
        client.sendmail("a@example.test", ["b@example.org"], b"Subject: 2\r\n\r\nx\r\n")
    [mail] = smtp_server.wait_for(1)
    assert b"Subject: 2" in mail.data


def test_smtp_untrusted_client_fails_verification(smtp_server: SmtpServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(smtp_server.host, smtp_server.smtps_port,
                         context=ssl.create_default_context(), timeout=10)


def test_wait_for_times_out_with_a_clear_error(smtp_server: SmtpServer) -> None:
    # Not timed: a timeout of 0 looks once. Should wait_for ignore its timeout, a letter
    # sent a little later ends the wait and the missing TimeoutError fails the test.
    def send_late() -> None:
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
            client.sendmail("a@example.test", ["b@example.org"], b"Subject: late\r\n\r\nx\r\n")

    late = threading.Timer(5, send_late)
    late.start()
    try:
        with pytest.raises(TimeoutError, match=r"expected 1 message\(s\) within 0 s, got 0"):
            smtp_server.wait_for(1, timeout=0)
    finally:
        late.cancel()


# -- keyring and helpers ---------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_memory_keyring_is_fresh_and_installed(memory_keyring: MemoryKeyring, run: int) -> None:
    # Run twice: whichever runs second would see the first one's password if state leaked.
    assert keyring.get_keyring() is memory_keyring
    assert os.environ["PYTHON_KEYRING_BACKEND"] == "tests.harness.keyring_backend.MemoryKeyring"
    assert keyring.get_password("eddymail", "imap") is None
    keyring.set_password("eddymail", "imap", f"pw{run}")
    assert keyring.get_password("eddymail", "imap") == f"pw{run}"
    assert memory_keyring.passwords == {("eddymail", "imap"): f"pw{run}"}
    keyring.delete_password("eddymail", "imap")
    with pytest.raises(keyring.errors.PasswordDeleteError):
        keyring.delete_password("eddymail", "imap")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as sock:
        assert sock.getsockname()[1] == port
