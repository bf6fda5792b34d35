"""Issue 11, class 10: every input a user or a sender controls is bounded while it is read.

Here: a password command's output (only its first line is read, at most a few KiB) and a
template's output (``str.format`` and ``%`` cannot build a value past the size limit). The
message size figures are in bench/memory_peak.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eddymail import secrets, templates
from eddymail.errors import SecretError, ValidationError
from tests.workcount import traced_peak

#: What a pipe can hold plus one read of ours: all a bounded reader lets a writer write.
PIPE_ROOM = 1024 * 1024


def flooding_command(tmp_path: Path, first: bytes, then: bytes, *, total: int) -> tuple[
        list[str], Path]:
    """A command that prints ``first``, then ``then`` over and over (``total`` bytes at
    most), then sleeps; it counts what it managed to write into a file."""
    counter = tmp_path / "written"
    script = tmp_path / "flood.py"
    script.write_text(
        "import os, sys, time\n"
        f"counter = {str(counter)!r}\n"
        "written = 0\n"
        "def note():\n"
        "    with open(counter + '.new', 'w') as f: f.write(str(written))\n"
        "    os.replace(counter + '.new', counter)\n"
        "try:\n"
        f"    written += os.write(1, {first!r})\n"
        f"    while written < {total}:\n"
        f"        written += os.write(1, {then!r} * 4096)\n"
        "        note()\n"
        "except BrokenPipeError:\n"
        "    pass\n"
        "note()\n"
        "time.sleep(0.2)\n"
    )
    return [sys.executable, str(script)], counter


@pytest.mark.parametrize(("first", "then", "password"), [
    (b"y\n", b"y\n", "y"),                          # yes(1)
    (b"s3cret\r\n", b"notes and more notes\n", "s3cret"),
    (b"pw\n", b"\0", "pw"),
])
def test_a_flooding_password_command_is_read_to_its_first_line(tmp_path, first, then,
                                                               password):
    command, counter = flooding_command(tmp_path, first, then, total=64 * 1024 * 1024)
    assert secrets.run_password_command("flood", command, timeout=30) == password
    assert int(counter.read_text()) < PIPE_ROOM


@pytest.mark.parametrize("then", [b"x", b"\0", b"\r"])
def test_endless_output_without_a_line_end_is_refused_early(tmp_path, then):
    command, counter = flooding_command(tmp_path, b"", then, total=64 * 1024 * 1024)
    with pytest.raises(SecretError, match="without a line end") as refused:
        secrets.run_password_command("flood", command, timeout=30)
    assert "x" * 20 not in str(refused.value)
    assert int(counter.read_text()) < PIPE_ROOM


# --- templates -------------------------------------------------------------------------------

SAMPLE = templates.sample_context("reply", "en")
#: Each builds a string far over ``MAX_TEXT_CHARS`` from a short source, if allowed.
HUGE = {
    "many fields under the width limit": "{{ '" + "{0:199999}" * 400 + "'.format('x') }}",
    "many percent fields": "{{ '" + "%199999s" * 400 + "' % ((user.name,) * 400) }}",
    "a named field repeated": "{{ '" + "{a:>199000}" * 300 + "'.format(a=1) }}",
    "precision of a float": "{{ '" + "{0:.190000f}" * 300 + "'.format(1.5) }}",
    "repeated long argument": "{{ ('{0}' * 3000).format(user.name * 200) }}",
    "format filter": "{{ ('%199999s' * 300) | format(*((1,) * 300)) }}",
    "nested width": "{{ '" + "{0:{1}}" * 300 + "'.format('x', 199999) }}",
}


@pytest.mark.parametrize("body", HUGE.values(), ids=HUGE.keys())
def test_format_tricks_cannot_build_a_huge_text(body):
    """Refused before the text is built: a check of the result would come after the memory
    was taken (each of these is tens of megabytes)."""
    source = f"Subject: [#{{{{ ticket.id }}}}] x\n\n{body}\n"
    templates.validate("reply", source)  # compiled outside the measurement
    with traced_peak() as peak, pytest.raises(ValidationError,
                                               match=r"limit|too large|longer"):
        templates.render("reply", source, SAMPLE)
    assert peak.bytes < 8 * templates.MAX_TEXT_CHARS * 4, f"{peak.bytes:,} bytes at the peak"


def test_ordinary_formatting_still_works():
    source = ("Subject: [#{{ ticket.id }}] x\n\n{{ '%-10s|' % user.name }}"
              "{{ '{:>8}'.format(ticket.id) }} {{ '{:.2f}'.format(2.5) }}\n")
    body = templates.render("reply", source, SAMPLE).body
    assert body == "Anna Petrova|    1042 2.50\n"


# --- a big base64 part -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clean", "junk", "one-line"])
def test_a_big_base64_part_is_decoded_without_copies_of_its_text(kind):
    """Parsing holds the decoded data and nothing more above the raw bytes: no slice of the
    part, no cleaned, compacted or lower-cased copy of tens of megabytes (it was 3.9 times
    the message, then 2.0; bench/memory_peak.py and test_memory.py measure the whole
    process)."""
    from bench.memory_peak import message
    from eddymail.mail.message.parse import ParseLimits, parse_message

    raw = message(8 * 2**20, kind, 1)
    with traced_peak() as peak:
        parsed = parse_message(raw, ParseLimits(max_message_bytes=2**30))
    assert len(parsed.attachments[0].data) == 8 * 2**20
    decoded = 8 * 2**20
    assert peak.bytes < 1.1 * decoded, f"{peak.bytes / decoded:.2f} x the attachment"
