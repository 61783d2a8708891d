"""The e-mail built for the outbox and SMTP."""

from __future__ import annotations

import email
import email.policy
import email.utils
import io
from datetime import UTC, datetime
from email.generator import BytesGenerator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import OutgoingMessage
from channels.mime import SMTP_POLICY, build_email, message_id_header

MSG = OutgoingMessage(
    message_id="01JMAIL",
    kind="email",
    to="Jürgen Groß <juergen@example.org>",
    subject="Ihr Treuebonus: 10 % auf Zubehör",
    body_text="Hallo Jürgen,\nhier ist Ihr Bonus.\n",
    body_html="<p>Hallo Jürgen,</p><p>hier ist Ihr <b>Bonus</b>.</p>",
    headers={
        "List-Unsubscribe": "<https://shop.example/u/t0k>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
)


def roundtrip(msg: OutgoingMessage, **kw: object) -> email.message.EmailMessage:
    built = build_email(msg, sender="Küchenhaus <service@kuechenhaus.example>", **kw)
    parsed = email.message_from_bytes(built.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_multipart_alternative_text_then_html() -> None:
    parsed = roundtrip(MSG)

    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content() == MSG.body_text
    assert html.get_content().strip() == MSG.body_html


def test_headers() -> None:
    date = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    parsed = roundtrip(MSG, reply_to="hilfe@kuechenhaus.example", date=date)

    assert parsed["Subject"] == MSG.subject
    assert parsed["From"].addresses[0].addr_spec == "service@kuechenhaus.example"
    assert parsed["To"].addresses[0].display_name == "Jürgen Groß"
    assert parsed["Reply-To"] == "hilfe@kuechenhaus.example"
    assert parsed["Date"].datetime == date
    assert parsed["Message-ID"] == "<01JMAIL@kuechenhaus.example>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["X-Aftersale-Message-Id"] == "01JMAIL"
    assert parsed["List-Unsubscribe"] == "<https://shop.example/u/t0k>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # MIME-Version belongs on the top level only.
    assert all("MIME-Version" not in part for part in parsed.iter_parts())


def test_non_ascii_subject_is_encoded_on_the_wire() -> None:
    raw = build_email(MSG, sender="s@example.org").as_bytes()

    assert raw.isascii()


def test_text_only_is_a_single_part() -> None:
    text_only = OutgoingMessage(message_id="t", kind="email", to="a@example.org", body_text="Hi")

    parsed = roundtrip(text_only)

    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content() == "Hi\n"


def test_header_injection_is_refused() -> None:
    evil = OutgoingMessage(
        message_id="e",
        kind="email",
        to="a@example.org",
        body_text="x",
        headers={"X-Note": "ok\r\nBcc: everyone@example.org"},
    )

    with pytest.raises(ValueError):
        build_email(evil, sender="s@example.org")


@pytest.mark.parametrize("bad", ["", "a b", "x@y", "<id>"])
def test_unusable_message_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        message_id_header(bad, "s@example.org")


def test_sender_must_be_an_address() -> None:
    with pytest.raises(ValueError):
        build_email(MSG, sender="nobody")


def test_sms_is_refused() -> None:
    with pytest.raises(ValueError):
        build_email(OutgoingMessage("s", "sms", "+491", "hi"), sender="s@example.org")


def test_long_and_awkward_content_roundtrips_exactly_in_short_7bit_lines() -> None:
    body = (
        "Grüße aus der Küche – " * 12 + "\n"  # one long line of 8-bit text
        "From here on: a line that mbox would mangle\n"
        ".\n"  # a lone dot, which SMTP escapes
        "trailing spaces   \n"
        "== 100 % = 1/1 ==\n"
    )
    long = OutgoingMessage(
        message_id="01JLONG",
        kind="email",
        to="Zoë Åkesson-Müller <zoe@example.org>",
        subject="Ihre Einladung zur kostenlosen Inspektion – Waschmaschine Öko-Plus 9000 (2)",
        body_text=body,
        body_html="<p>" + "Grüße " * 300 + "</p>",
    )
    raw = build_email(long, sender="Küchenhaus <service@kuechenhaus.example>").as_bytes()

    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\n")) <= 78
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == long.subject
    assert parsed["To"].addresses[0].display_name == "Zoë Åkesson-Müller"
    text, html = parsed.iter_parts()
    assert text.get_content() == body
    assert html.get_content().strip() == long.body_html


@pytest.mark.parametrize("to", ["nobody", "jörg@example.org", "a@example.org\nBcc: x@example.org"])
def test_unusable_recipients_are_refused(to: str) -> None:
    with pytest.raises(ValueError):
        build_email(OutgoingMessage("r", "email", to, "hi"), sender="s@example.org")


def test_an_international_domain_goes_out_in_its_ascii_form() -> None:
    msg = OutgoingMessage("i", "email", "Jörg <joerg@bücher.example>", "hi")

    parsed = roundtrip(msg)

    assert parsed["To"].addresses[0].addr_spec == "joerg@xn--bcher-kva.example"
    assert parsed["To"].addresses[0].display_name == "Jörg"


# Header values as shops write them: words, punctuation, umlauts, runs of spaces, long ones.
_HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=120
)


@settings(max_examples=300, deadline=None)
@given(
    subject=_HEADER_TEXT,
    note=_HEADER_TEXT,
    name=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    html=st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
    linesep=st.sampled_from(["\n", "\r\n"]),
)
def test_written_exactly_as_the_standard_generator_writes_it(
    subject: str, note: str, name: str, body: str, html: str | None, linesep: str
) -> None:
    # The writer's shortcuts (headers as is, bodies in one piece, encodings kept per
    # value) must not change a byte of what compat32's own generator writes.
    msg = OutgoingMessage(
        message_id="01JPROP",
        kind="email",
        to=email.utils.formataddr((name, "kunde@example.org")),
        subject=subject,
        body_text=body,
        body_html=html,
        headers={"X-Note": note, "List-Unsubscribe": "<https://shop.example/u/" + "t" * 70 + ">"},
    )
    try:
        built = build_email(msg, sender="Küchenhaus <service@kuechenhaus.example>")
    except ValueError:  # a display name that cannot be an address: refused, as before
        return
    standard = io.BytesIO()
    policy = email.policy.compat32.clone(linesep=linesep)
    BytesGenerator(standard, mangle_from_=False, policy=policy).flatten(built)

    ours = built.as_bytes() if linesep == "\n" else built.as_bytes(policy=SMTP_POLICY)

    assert ours == standard.getvalue()
