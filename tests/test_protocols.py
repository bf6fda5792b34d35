"""The protocol layer against real servers: Dovecot (IMAP, POP3) and aiosmtpd (SMTP).

Faults a real server will not produce on demand (a server that never speaks, one without
STARTTLS, a certificate for another host) come from small scripted loopback servers.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from eddymail.errors import MailServerError
from eddymail.mail.wire.diagnose import classify
from eddymail.mail.wire.endpoint import Endpoint, ProviderHints
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.imapwire import decode_folder_name, encode_folder_name
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.smtp import SmtpClient
from eddymail.mail.wire.tls import make_ssl_context
from tests.harness.plugin import free_port

GMAIL = ProviderHints(
    provider="Gmail",
    app_password=True,
    access_setting="Settings → Forwarding and POP/IMAP → Enable IMAP",
)


def make_mail(subject: str, body: str = "Hello.\n", sender: str = "alice@example.org") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    message.set_content(body)
    return bytes(message)


def assert_no_secret(error: MailServerError, password: str) -> None:
    """The password must not leak through any part of the error."""
    for text in (str(error), error.message, error.answer, error.hint or "", repr(error.args)):
        assert password not in text


def imap_endpoint(dovecot, user, security="starttls", **overrides) -> Endpoint:
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port
    values = {
        "host": dovecot.host,
        "port": port,
        "security": security,
        "login": user.login,
        "ca_file": str(dovecot.pki.ca_file),
        "timeout": 10.0,
    }
    values.update(overrides)
    return Endpoint(**values)


def pop3_endpoint(dovecot, user, security="starttls", **overrides) -> Endpoint:
    port = dovecot.pop3s_port if security == "ssl" else dovecot.pop3_port
    values = {
        "host": dovecot.host,
        "port": port,
        "security": security,
        "login": user.login,
        "ca_file": str(dovecot.pki.ca_file),
        "timeout": 10.0,
    }
    values.update(overrides)
    return Endpoint(**values)


def smtp_endpoint(server, login="agent", security="starttls", **overrides) -> Endpoint:
    values = {
        "host": server.host,
        "port": server.smtps_port if security == "ssl" else server.port,
        "security": security,
        "login": login,
        "ca_file": str(server.ca_file),
        "timeout": 10.0,
    }
    values.update(overrides)
    return Endpoint(**values)


# -- scripted loopback servers ---------------------------------------------------------------


class Scripted:
    """A one-connection loopback server running ``script(connection, received)`` in a thread.

    ``received`` collects every line the client sent, so a test can prove what never was.
    """

    def __init__(self, script: Callable[[socket.socket, list[bytes]], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self._script = script
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        with contextlib.suppress(OSError):
            connection, _ = self.listener.accept()
            with connection:
                connection.settimeout(10)
                self._script(connection, self.received)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(timeout=15)


@contextlib.contextmanager
def scripted(script: Callable[[socket.socket, list[bytes]], None]) -> Iterator[Scripted]:
    server = Scripted(script)
    try:
        yield server
    finally:
        server.close()


def read_lines(connection: socket.socket, received: list[bytes]) -> Iterator[bytes]:
    """Lines from the client until it hangs up (or stays silent for the socket timeout)."""
    reader = connection.makefile("rb")
    with contextlib.suppress(OSError):
        for line in reader:
            received.append(line)
            yield line


def silent(connection: socket.socket, received: list[bytes]) -> None:
    """Accept, then never say a word; wait until the client gives up."""
    with contextlib.suppress(OSError):
        while data := connection.recv(4096):
            received.append(data)


def imap_without_starttls(connection: socket.socket, received: list[bytes]) -> None:
    connection.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Scripted ready.\r\n")
    for line in read_lines(connection, received):
        tag, _, rest = line.partition(b" ")
        command = rest.split(b" ", 1)[0].strip().upper()
        if command == b"CAPABILITY":
            connection.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        elif command == b"LOGOUT":
            connection.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            return
        else:
            connection.sendall(tag + b" BAD not expected here\r\n")


def pop3_without_stls(connection: socket.socket, received: list[bytes]) -> None:
    connection.sendall(b"+OK Scripted POP3 ready.\r\n")
    for line in read_lines(connection, received):
        if line.upper().startswith(b"CAPA"):
            connection.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
        elif line.upper().startswith(b"QUIT"):
            connection.sendall(b"+OK bye\r\n")
            return
        else:
            connection.sendall(b"-ERR not expected here\r\n")


def smtp_without_starttls(connection: socket.socket, received: list[bytes]) -> None:
    connection.sendall(b"220 scripted.test ESMTP\r\n")
    for line in read_lines(connection, received):
        if line.upper().startswith(b"EHLO"):
            connection.sendall(b"250-scripted.test\r\n250 AUTH PLAIN LOGIN\r\n")
        elif line.upper().startswith(b"QUIT"):
            connection.sendall(b"221 bye\r\n")
            return
        else:
            connection.sendall(b"502 not expected here\r\n")


def tls_with_wrong_host(pki) -> Callable[[socket.socket, list[bytes]], None]:
    context = pki.server_context(wrong_host=True)

    def script(connection: socket.socket, received: list[bytes]) -> None:
        # The client rejects the certificate during the handshake; nothing else happens.
        with contextlib.suppress(OSError):
            context.wrap_socket(connection, server_side=True).close()

    return script


# -- IMAP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_imap_select_counts_messages_and_unseen(dovecot, mail_user, security):
    uids = [dovecot.deliver(mail_user, make_mail(f"Printer {n}")) for n in range(3)]
    dovecot.mark_seen(mail_user, [uids[0]])

    with ImapClient(imap_endpoint(dovecot, mail_user, security), mail_user.password) as client:
        status = client.select("INBOX", count_unseen=True)
        assert "IMAP4REV1" in client.capabilities

    assert (status.folder, status.exists, status.unseen) == ("INBOX", 3, 2)
    assert status.uidvalidity > 0
    assert status.uidnext == max(uids) + 1


def test_imap_fetch_uses_peek_and_leaves_mail_unseen(dovecot, mail_user):
    raws = [make_mail(f"Ticket {n}", body=f"Body {n}\n" + "x" * 3000 + "\n") for n in range(5)]
    uids = [dovecot.deliver(mail_user, raw) for raw in raws]

    with ImapClient(imap_endpoint(dovecot, mail_user), mail_user.password) as client:
        client.select("INBOX")
        unseen = client.search_uids("UNSEEN")
        sizes = client.fetch_sizes(unseen)
        # 999999 does not exist: the server leaves it out and so must we.
        fetched = dict(client.fetch_messages([*unseen, 999999], batch_size=2))
        flags = client.fetch_flags(unseen)
        headers = client.fetch_headers(uids[:2])

    assert unseen == uids
    assert sorted(fetched) == uids
    for uid, raw in zip(uids, raws, strict=True):
        assert fetched[uid].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        assert sizes[uid] == len(fetched[uid])
        assert "\\Seen" not in flags[uid]
    assert sorted(headers) == uids[:2]
    assert headers[uids[0]].startswith(b"From: ") and b"Subject: Ticket 0\r\n" in headers[uids[0]]
    assert b"Body 0" not in headers[uids[0]]
    stored = dovecot.messages(mail_user)
    assert [message.uid for message in stored] == uids
    assert all("\\Seen" not in message.flags for message in stored)


def test_imap_add_flags_move_and_delete(dovecot, mail_user):
    uids = [dovecot.deliver(mail_user, make_mail(f"Move me {n}")) for n in range(4)]
    archive = "Обработано & done"

    with ImapClient(imap_endpoint(dovecot, mail_user, "ssl"), mail_user.password) as client:
        client.select("INBOX")
        client.add_flags(uids[:2])
        client.move([uids[0]], archive)  # the folder does not exist yet
        client.delete([uids[1]])
        assert "MOVE" in client.capabilities and "UIDPLUS" in client.capabilities
        folders = client.folders()

    assert archive in folders
    assert encode_folder_name(archive) in dovecot.folder_names(mail_user)
    inbox = {message.uid: message for message in dovecot.messages(mail_user)}
    assert sorted(inbox) == uids[2:]
    assert all("\\Seen" not in message.flags for message in inbox.values())
    moved = dovecot.messages(mail_user, encode_folder_name(archive))
    assert len(moved) == 1
    assert b"Subject: Move me 0" in moved[0].raw
    assert "\\Seen" in moved[0].flags


def test_imap_move_without_move_capability_copies_and_expunges(dovecot, mail_user):
    uids = [dovecot.deliver(mail_user, make_mail(f"Old server {n}")) for n in range(3)]

    with ImapClient(imap_endpoint(dovecot, mail_user), mail_user.password) as client:
        client.select("INBOX")
        # Behave like a server without RFC 6851 MOVE: UID COPY, \Deleted, UID EXPUNGE.
        client.capabilities = client.capabilities - {"MOVE"}
        client.move(uids[:2], "Done")

    assert [message.uid for message in dovecot.messages(mail_user)] == [uids[2]]
    assert len(dovecot.messages(mail_user, "Done")) == 2


def test_imap_wrong_password_gives_answer_and_app_password_hint(dovecot, mail_user):
    password = mail_user.password + "-wrong"
    with pytest.raises(MailServerError) as caught:
        ImapClient(imap_endpoint(dovecot, mail_user, "ssl"), password, GMAIL)
    error = caught.value
    assert error.operation == "imap login"
    assert error.answer == "[AUTHENTICATIONFAILED] Authentication failed."
    assert f"{dovecot.host}:{dovecot.imaps_port}" in error.message
    hint = error.hint or ""
    assert hint.startswith("The login or password is wrong.")
    assert "Gmail needs an app password" in hint
    assert "IMAP access is enabled in the mailbox settings" in hint
    assert GMAIL.access_setting in hint
    assert error.tls is False
    assert_no_secret(error, password)
    # No traceback chain back into imaplib's frames, whose locals hold the password.
    assert error.__cause__ is None and error.__context__ is None


def test_imap_non_ascii_password_logs_in_with_authenticate_plain(dovecot):
    user = dovecot.create_user(password="пароль-Grüße")
    dovecot.deliver(user, make_mail("Unicode password"))
    with ImapClient(imap_endpoint(dovecot, user), user.password) as client:
        assert client.select().exists == 1


def test_imap_missing_folder_names_the_folder(dovecot, mail_user):
    client = ImapClient(imap_endpoint(dovecot, mail_user), mail_user.password)
    with client, pytest.raises(MailServerError) as caught:
        client.select("No Such Folder")
    error = caught.value
    assert error.operation == "imap select"
    assert '"No Such Folder"' in error.message
    assert "Mailbox doesn't exist: No Such Folder" in error.answer
    assert "--folder" in (error.hint or "")
    assert_no_secret(error, mail_user.password)


def test_imap_plain_connection_refused_by_server_policy(dovecot, mail_user):
    if dovecot.tls_required_host is None:
        pytest.skip("no second loopback address on this system")
    endpoint = imap_endpoint(dovecot, mail_user, "none", host=dovecot.tls_required_host)
    with pytest.raises(MailServerError) as caught:
        ImapClient(endpoint, mail_user.password)
    error = caught.value
    assert "LOGINDISABLED" in error.answer
    assert "--security starttls" in (error.hint or "")
    assert_no_secret(error, mail_user.password)


def test_folder_names_use_modified_utf7():
    # RFC 3501 section 5.1.3 example, plus '&' and a Cyrillic name.
    assert encode_folder_name("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_folder_name("R&D") == "R&-D"
    for name in ("Входящие/Отчёты", "R&D", "INBOX", "日本語 & more", "a&b&"):
        assert decode_folder_name(encode_folder_name(name)) == name
    assert decode_folder_name(b"&BBIERQQ+BDQETwRJBDgENQ-") == "Входящие"
    assert decode_folder_name("broken&abc") == "broken&abc"  # unterminated: left as is


# -- POP3 ------------------------------------------------------------------------------------


def test_pop3_stls_stat_uidl_retrieve_and_delete_on_quit(dovecot, mail_user):
    raws = [make_mail(f"Pop {n}") for n in range(3)]
    for raw in raws:
        dovecot.deliver(mail_user, raw)

    with Pop3Client(pop3_endpoint(dovecot, mail_user), mail_user.password) as client:
        count, total = client.stat()
        listing = client.uidl()
        sizes = client.sizes()
        first = client.retrieve(1)
        head = client.top(2, 0)
        client.delete(1)

    assert count == 3
    assert total == sum(sizes.values())
    assert [number for number, _ in listing] == [1, 2, 3]
    assert len({unique_id for _, unique_id in listing}) == 3
    assert first.replace(b"\r\n", b"\n") == raws[0].replace(b"\r\n", b"\n")
    assert len(first) == sizes[1]
    assert b"Subject: Pop 1\r\n" in head and b"Hello." not in head
    # QUIT on the clean exit committed the DELE.
    remaining = dovecot.messages(mail_user)
    assert [b"Subject: Pop 1" in m.raw for m in remaining] == [True, False]
    assert b"Subject: Pop 2" in remaining[1].raw


def test_pop3s_delete_is_rolled_back_when_the_block_fails(dovecot, mail_user):
    dovecot.deliver(mail_user, make_mail("Keep me"))
    with (
        pytest.raises(RuntimeError),
        Pop3Client(pop3_endpoint(dovecot, mail_user, "ssl"), mail_user.password) as client,
    ):
        assert client.stat()[0] == 1
        client.delete(1)
        raise RuntimeError("crash before the mail was stored")
    # No QUIT was sent, so the server kept the message.
    assert len(dovecot.messages(mail_user)) == 1


def test_pop3_wrong_password_says_what_the_server_answered(dovecot, mail_user):
    password = "definitely-Wrong-42"
    with pytest.raises(MailServerError) as caught:
        Pop3Client(pop3_endpoint(dovecot, mail_user, "ssl"), password, GMAIL)
    error = caught.value
    assert error.operation == "pop3 login"
    assert error.answer.startswith("-ERR")
    assert "Authentication failed" in error.answer
    assert "Gmail needs an app password" in (error.hint or "")
    assert "POP access is enabled" in (error.hint or "")
    assert_no_secret(error, password)


# -- SMTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_send_arrives_over_tls_with_login(smtp_server, security):
    smtp_server.add_user("agent", "s3cret-pass")
    raw = make_mail("Re: [#12] Printer", body="Fixed.\n.leading dot\n")
    endpoint = smtp_endpoint(smtp_server, security=security)
    with SmtpClient(endpoint, "s3cret-pass", local_hostname="localhost") as client:
        answer = client.send("agent@example.test", ["alice@example.org"], raw)

    assert answer.startswith("250 ")
    (mail,) = smtp_server.wait_for(1)
    assert mail.tls is True
    assert mail.login == "agent"
    assert mail.mail_from == "agent@example.test"
    assert mail.rcpt_tos == ["alice@example.org"]
    assert b"Subject: Re: [#12] Printer" in mail.data
    assert b"\r\n.leading dot\r\n" in mail.data  # dot-stuffing undone by the server


def test_smtp_non_ascii_password(smtp_server):
    smtp_server.add_user("agent", "пароль-Grüße")
    with SmtpClient(
        smtp_endpoint(smtp_server, security="ssl"), "пароль-Grüße", local_hostname="localhost"
    ) as client:
        client.send("agent@example.test", ["bob@example.org"], make_mail("Unicode"))
    assert smtp_server.wait_for(1)[0].login == "agent"


def test_smtp_wrong_password_gives_answer_and_app_password_hint(smtp_server):
    smtp_server.add_user("agent", "right-password")
    password = "wrong-Password-99"
    with pytest.raises(MailServerError) as caught:
        SmtpClient(smtp_endpoint(smtp_server), password, GMAIL, local_hostname="localhost")
    error = caught.value
    assert error.operation == "smtp login"
    assert error.answer == "535 5.7.8 Authentication credentials invalid"
    hint = error.hint or ""
    assert hint.startswith("The login or password is wrong.")
    assert "Gmail needs an app password" in hint
    assert "IMAP access" not in hint  # an SMTP login has nothing to do with IMAP access
    assert f"{smtp_server.host}:{smtp_server.port}" in error.message
    assert_no_secret(error, password)
    assert smtp_server.auth_attempts and not smtp_server.auth_attempts[-1].success


def test_smtp_refused_data_is_an_error_with_the_answer(smtp_server):
    smtp_server.queue_data_response("554 5.7.1 Message rejected as spam")
    client = SmtpClient(smtp_endpoint(smtp_server), None, local_hostname="localhost")
    with client, pytest.raises(MailServerError) as caught:
        client.send("agent@example.test", ["bob@example.org"], make_mail("Spammy"))
    assert caught.value.answer == "554 5.7.1 Message rejected as spam"
    assert caught.value.operation == "smtp data"
    assert "policy" in caught.value.message
    assert smtp_server.received == []


def test_smtp_sender_refused_without_login(smtp_server):
    smtp_server.add_user("agent", "pw")  # from now on MAIL FROM needs AUTH
    client = SmtpClient(smtp_endpoint(smtp_server), None, local_hostname="localhost")
    with client, pytest.raises(MailServerError) as caught:
        client.send("agent@example.test", ["bob@example.org"], make_mail("No auth"))
    assert caught.value.answer == "530 5.7.0 Authentication required"
    assert "password" in (caught.value.hint or "")


# -- network and TLS failures ------------------------------------------------------------------

CLIENTS = {
    "imap": lambda endpoint, password: ImapClient(endpoint, password),
    "pop3": lambda endpoint, password: Pop3Client(endpoint, password),
    "smtp": lambda endpoint, password: SmtpClient(endpoint, password, local_hostname="localhost"),
}


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_closed_port_is_connection_refused(protocol):
    port = free_port()
    endpoint = Endpoint("127.0.0.1", port, "ssl", "agent", timeout=5)
    with pytest.raises(MailServerError) as caught:
        CLIENTS[protocol](endpoint, "pw-never-sent")
    error = caught.value
    assert "Connection refused" in error.answer
    assert f"127.0.0.1:{port}" in error.message
    assert "firewall" in (error.hint or "")
    assert error.operation == f"{protocol} connect"
    assert_no_secret(error, "pw-never-sent")


def tls_ports(protocol, dovecot, smtp_server) -> tuple[int, str]:
    if protocol == "imap":
        return dovecot.imaps_port, "ssl"
    if protocol == "pop3":
        return dovecot.pop3_port, "starttls"
    return smtp_server.smtps_port, "ssl"


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_untrusted_certificate_needs_ca_file(protocol, dovecot, mail_user, smtp_server):
    port, security = tls_ports(protocol, dovecot, smtp_server)
    password = mail_user.password
    smtp_server.add_user(mail_user.login, password)
    endpoint = Endpoint("127.0.0.1", port, security, mail_user.login, timeout=10)

    with pytest.raises(MailServerError) as caught:
        CLIENTS[protocol](endpoint, password)
    error = caught.value
    assert error.tls is True
    assert error.answer.startswith("certificate verify failed")
    assert "--ca-file" in (error.hint or "")
    assert_no_secret(error, password)

    trusted = Endpoint(
        "127.0.0.1", port, security, mail_user.login, ca_file=str(dovecot.pki.ca_file)
    )
    with CLIENTS[protocol](trusted, password):
        pass


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_certificate_for_another_host(protocol, pki):
    with scripted(tls_with_wrong_host(pki)) as server, pytest.raises(MailServerError) as caught:
        endpoint = Endpoint("127.0.0.1", server.port, "ssl", "agent", ca_file=str(pki.ca_file))
        CLIENTS[protocol](endpoint, "pw-never-sent")
    error = caught.value
    assert error.tls is True
    assert "mismatch" in error.answer or "not valid for" in error.answer
    assert "another host name" in (error.hint or "")
    assert "--host" in (error.hint or "")


@pytest.mark.parametrize("security", ["none", "ssl"])
@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_server_that_never_speaks_times_out(protocol, security):
    # Not timed: the server keeps silent for 10 s (its socket timeout), then hangs up, so a
    # client whose own 1 s timeout did not work would report a closed connection instead.
    with scripted(silent) as server:
        endpoint = Endpoint("127.0.0.1", server.port, security, "agent", timeout=1)
        with pytest.raises(MailServerError) as caught:
            CLIENTS[protocol](endpoint, "pw-never-sent")
    error = caught.value
    assert "no answer within 1 second" in error.message
    assert "firewall" in (error.hint or "")
    assert error.tls is (security == "ssl")  # stuck in the TLS handshake
    if security == "none":
        assert server.received == []  # we waited for the greeting and sent nothing


@pytest.mark.parametrize(
    ("protocol", "script", "login_words"),
    [
        ("imap", imap_without_starttls, (b"LOGIN", b"AUTHENTICATE")),
        ("pop3", pop3_without_stls, (b"USER", b"PASS")),
        ("smtp", smtp_without_starttls, (b"AUTH",)),
    ],
)
def test_missing_starttls_never_sends_the_password(protocol, script, login_words):
    password = "Top-Secret-77"
    with scripted(script) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "starttls", "agent", timeout=5)
        with pytest.raises(MailServerError) as caught:
            CLIENTS[protocol](endpoint, password)
    error = caught.value
    assert error.tls is True
    assert "STARTTLS" in error.message
    assert "--security ssl" in (error.hint or "")
    sent = b"".join(server.received)
    assert password.encode() not in sent
    for word in login_words:
        assert word not in sent.upper()
    assert_no_secret(error, password)


def imap_refusing_starttls(connection: socket.socket, received: list[bytes]) -> None:
    connection.sendall(b"* OK Scripted ready.\r\n")
    for line in read_lines(connection, received):
        tag, _, rest = line.partition(b" ")
        command = rest.split(b" ", 1)[0].strip().upper()
        if command == b"CAPABILITY":
            connection.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + tag + b" OK done\r\n")
        elif command == b"STARTTLS":
            connection.sendall(tag + b" NO [UNAVAILABLE] TLS is broken today\r\n")
        elif command == b"LOGOUT":
            connection.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            return
        else:
            connection.sendall(tag + b" BAD not expected here\r\n")


def test_refused_starttls_never_sends_the_password():
    with scripted(imap_refusing_starttls) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "starttls", "agent", timeout=5)
        with pytest.raises(MailServerError) as caught:
            ImapClient(endpoint, "Top-Secret-77")
    assert caught.value.tls is True
    assert caught.value.operation == "imap starttls"
    assert "refused STARTTLS" in caught.value.message
    assert b"LOGIN" not in b"".join(server.received).upper()


def imap_hanging_in_starttls(connection: socket.socket, received: list[bytes]) -> None:
    """Says OK to STARTTLS, then never starts the TLS handshake."""
    connection.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Scripted ready.\r\n")
    for line in read_lines(connection, received):
        tag, _, rest = line.partition(b" ")
        command = rest.strip().upper()
        if command == b"CAPABILITY":
            connection.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + tag + b" OK done\r\n")
        elif command == b"STARTTLS":
            connection.sendall(tag + b" OK Begin TLS negotiation now\r\n")
            silent(connection, received)
            return


def test_hung_starttls_times_out_without_sending_the_password():
    # As above: the server's silence lasts 10 s, the client's timeout is what must end it.
    with scripted(imap_hanging_in_starttls) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "starttls", "agent", timeout=1)
        with pytest.raises(MailServerError) as caught:
            ImapClient(endpoint, "Top-Secret-77")
    assert caught.value.operation == "imap starttls"
    assert "no answer within 1 second" in caught.value.message
    assert caught.value.tls is True
    assert b"Top-Secret-77" not in b"".join(server.received)


def imap_with_uid_after_literal(connection: socket.socket, received: list[bytes]) -> None:
    """A server that puts UID after the body literal and slips in an unsolicited FETCH."""
    bodies = {7: b"Subject: seven\r\n\r\nBody 7\r\n", 9: b"Subject: nine\r\n\r\n.\r\n"}
    connection.sendall(b"* OK [CAPABILITY IMAP4rev1] Scripted ready.\r\n")
    for line in read_lines(connection, received):
        tag, _, rest = line.partition(b" ")
        command = rest.strip().upper()
        if command.startswith(b"CAPABILITY"):
            connection.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
        elif command.startswith(b"LOGIN"):
            connection.sendall(tag + b" OK logged in\r\n")
        elif command.startswith(b"SELECT"):
            connection.sendall(
                b"* 3 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n* OK [UIDNEXT 10] ok\r\n"
                + tag
                + b" OK [READ-WRITE] done\r\n"
            )
        elif command.startswith(b"UID SEARCH"):
            connection.sendall(b"* SEARCH 7 9\r\n" + tag + b" OK done\r\n")
        elif command.startswith(b"UID FETCH"):
            reply = b"* 3 FETCH (FLAGS (\\Seen))\r\n"
            for number, (uid, body) in enumerate(bodies.items(), start=1):
                reply += b"* %d FETCH (BODY[] {%d}\r\n%s UID %d)\r\n" % (
                    number,
                    len(body),
                    body,
                    uid,
                )
            connection.sendall(reply + tag + b" OK done\r\n")
        elif command.startswith(b"LOGOUT"):
            connection.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            return
        else:
            connection.sendall(tag + b" BAD not expected here\r\n")


def test_fetch_understands_uid_after_the_literal():
    with scripted(imap_with_uid_after_literal) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "none", "agent", timeout=5)
        with ImapClient(endpoint, "pw") as client:
            status = client.select(count_unseen=True)
            fetched = dict(client.fetch_messages([7, 8, 9]))
    assert (status.exists, status.unseen, status.uidvalidity, status.uidnext) == (3, 2, 42, 10)
    assert fetched == {
        7: b"Subject: seven\r\n\r\nBody 7\r\n",
        9: b"Subject: nine\r\n\r\n.\r\n",
    }
    fetch = next(line for line in server.received if b"UID FETCH" in line.upper())
    assert b"BODY.PEEK[]" in fetch
    assert b"7:9" in fetch


def pop3_with_uidl(listing: bytes) -> Callable[[socket.socket, list[bytes]], None]:
    def script(connection: socket.socket, received: list[bytes]) -> None:
        connection.sendall(b"+OK Scripted POP3 ready.\r\n")
        for line in read_lines(connection, received):
            word = line.split(b" ", 1)[0].strip().upper()
            if word in (b"USER", b"PASS"):
                connection.sendall(b"+OK\r\n")
            elif word == b"UIDL":
                connection.sendall(b"+OK\r\n" + listing + b".\r\n")
            elif word == b"QUIT":
                connection.sendall(b"+OK bye\r\n")
                return
            else:
                connection.sendall(b"-ERR not expected here\r\n")

    return script


@pytest.mark.parametrize(
    ("listing", "what"),
    [
        (b"1 abc\r\n2 def\r\n3 abc\r\n", "share the unique id"),
        (b"1 abc\r\n2 de f\r\n", "malformed"),
        (b"1 abc\r\nx def\r\n", "malformed"),
        (b"1 abc\r\n1 def\r\n", "malformed"),
    ],
)
def test_pop3_broken_uidl_listing_is_refused(listing, what):
    with scripted(pop3_with_uidl(listing)) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "none", "agent", timeout=5)
        client = Pop3Client(endpoint, "pw")
        with client, pytest.raises(MailServerError) as caught:
            client.uidl()
    assert what in caught.value.message
    assert caught.value.operation == "pop3 uidl"
    assert "cannot tell messages apart" in (caught.value.hint or "")


def smtp_refusing_one_recipient(connection: socket.socket, received: list[bytes]) -> None:
    connection.sendall(b"220 scripted.test ESMTP\r\n")
    for line in read_lines(connection, received):
        upper = line.upper()
        if upper.startswith(b"EHLO"):
            connection.sendall(b"250-scripted.test\r\n250 SIZE 1000000\r\n")
        elif upper.startswith(b"RCPT") and b"NOBODY" in upper:
            connection.sendall(b"550 5.1.1 <nobody@example.org>: User unknown\r\n")
        elif upper.startswith((b"MAIL", b"RCPT", b"RSET")):
            connection.sendall(b"250 2.0.0 Ok\r\n")
        elif upper.startswith(b"QUIT"):
            connection.sendall(b"221 bye\r\n")
            return
        else:
            connection.sendall(b"502 not expected here\r\n")


def test_smtp_refused_recipient_stops_before_data():
    with scripted(smtp_refusing_one_recipient) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "none", "agent", timeout=5)
        client = SmtpClient(endpoint, None, local_hostname="localhost")
        with client, pytest.raises(MailServerError) as caught:
            client.send(
                "agent@example.test",
                ["alice@example.org", "nobody@example.org"],
                make_mail("Two recipients"),
            )
    error = caught.value
    assert error.operation == "smtp rcpt to"
    assert "nobody@example.org" in error.message and "1 of 2" in error.message
    assert "550 5.1.1" in error.answer
    commands = [line.split(b" ")[0].strip().upper() for line in server.received]
    assert b"DATA" not in commands  # nobody got the message, a retry cannot duplicate it
    assert b"RSET" in commands
    assert any(b"SIZE=" in line for line in server.received if line.upper().startswith(b"MAIL"))


def test_tls_to_a_plain_port_names_the_usual_ports(dovecot, mail_user):
    endpoint = imap_endpoint(dovecot, mail_user, "ssl", port=dovecot.imap_port, timeout=5)
    with pytest.raises(MailServerError) as caught:
        ImapClient(endpoint, mail_user.password)
    error = caught.value
    assert error.tls is True
    assert "993" in (error.hint or "") and "143" in (error.hint or "")


def test_imap_client_on_a_pop3_port_says_what_answered(dovecot, mail_user):
    endpoint = imap_endpoint(dovecot, mail_user, "none", port=dovecot.pop3_port, timeout=5)
    with pytest.raises(MailServerError) as caught:
        ImapClient(endpoint, mail_user.password)
    error = caught.value
    assert "POP3" in error.message
    assert error.answer.startswith("+OK")
    assert "993" in (error.hint or "")


# -- diagnosis of provider answers (no server can be made to say these) --------------------------

ENDPOINT = Endpoint("imap.example.com", 993, "ssl", "someone@example.com")


def diagnose(
    exc: BaseException,
    protocol: str = "imap",
    operation: str = "imap login",
    hints: ProviderHints = GMAIL,
    **kwargs,
) -> MailServerError:
    return classify(
        exc, protocol=protocol, operation=operation, endpoint=ENDPOINT, hints=hints, **kwargs
    )


def test_gmail_imap_disabled_alert_points_to_the_setting():
    error = diagnose(
        imaplib.IMAP4.error(
            b"[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings "
            b"page and enable your account for IMAP access. (Failure)"
        )
    )
    assert error.answer.startswith("[ALERT] Your account is not enabled for IMAP use.")
    assert "enable IMAP access" in (error.hint or "")
    assert GMAIL.access_setting in (error.hint or "")


def test_yandex_ambiguous_answer_gives_both_causes():
    error = diagnose(
        imaplib.IMAP4.error(
            b"[AUTHENTICATIONFAILED] LOGIN Invalid credentials or IMAP is disabled"
        ),
        hints=ProviderHints(provider="Yandex", app_password=True),
    )
    hint = error.hint or ""
    assert "password is wrong" in hint and "IMAP access is switched off" in hint
    assert "Yandex needs an app password" in hint


def test_application_password_required_answer():
    import smtplib

    error = diagnose(
        smtplib.SMTPAuthenticationError(534, b"5.7.9 Application-specific password required."),
        protocol="smtp",
        operation="smtp login",
        hints=ProviderHints(provider="Gmail"),
    )
    assert error.answer == "534 5.7.9 Application-specific password required."
    assert "Gmail needs an app password" in (error.hint or "")


def test_echoed_password_is_scrubbed_from_answers():
    password = "hunter2-Long"
    error = diagnose(
        imaplib.IMAP4.error(f"LOGIN command error: BAD [b'bad syntax near \"{password}\"']"),
        secrets=[password],
    )
    assert_no_secret(error, password)
    assert error.answer.startswith("BAD bad syntax near")


def test_unreadable_ca_file(tmp_path: Path):
    with pytest.raises(MailServerError) as caught:
        make_ssl_context(str(tmp_path / "missing.pem"))
    assert caught.value.tls is True
    assert "--ca-file" in (caught.value.hint or "")
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(MailServerError):
        make_ssl_context(str(empty))
    assert make_ssl_context().verify_mode == ssl.CERT_REQUIRED
