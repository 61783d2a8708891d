"""`aftersale journeys validate` as a marketer meets it: every mistake reported once, with
file:line and a hint; warnings about names the imported data never carries; templates
copied from the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli import app
from templates.renderer import BUILTIN_DIR
from tests.broken_journeys import MISTAKES, write_broken

ENV = {"COLUMNS": "300"}


def cli(*args: str, project: Path | None = None):
    prefix = ["--project", str(project)] if project else []
    return CliRunner().invoke(app, [*prefix, *args], env=ENV)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    directory = tmp_path / "shop"
    assert cli("init", str(directory)).exit_code == 0
    return directory


def test_twenty_broken_journeys_each_get_their_line_and_a_hint(shop: Path):
    for path in (shop / "journeys").glob("*.yaml"):
        path.unlink()
    written = write_broken(shop / "journeys")
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 1
    lines = [line for line in done.output.splitlines() if ": error: " in line]
    assert len(lines) == len(MISTAKES) == 20
    for name, (_, _, line, words) in MISTAKES.items():
        [said] = [text for text in lines if text.startswith(f"{written[name]}:")]
        assert said.startswith(f"{written[name]}:{line}: error: "), said
        for word in words:
            assert word in said, (name, said)
    assert "Traceback" not in done.output
    assert "chunk after expression" not in done.output
    assert "Extra inputs are not permitted" not in done.output


def test_the_built_in_journeys_are_valid(shop: Path):
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 0, done.output
    assert "5 journeys valid" in done.output


def test_a_marketing_journey_without_a_topic_is_warned_about(shop: Path):
    # A journey copied into a project before topics existed.
    offer = shop / "journeys" / "loyalty_offer.yaml"
    offer.write_text(offer.read_text(encoding="utf-8").replace("topic: offers\n", ""))
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert f"{offer}:1: warning: topic: not set" in said
    assert "add `topic: service` or `topic: offers`" in said
    assert said.count("topic: not set") == 1  # thank_you is transactional; the rest name one


def test_an_unknown_template_names_the_files_and_where_built_ins_live(shop: Path):
    path = shop / "journeys" / "extended_warranty.yaml"
    path.write_text(path.read_text().replace("template: warranty_reminder", "template: sms_promo"))
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 1
    [said] = [line for line in done.output.splitlines() if "sms_promo" in line]
    line = path.read_text().splitlines().index("      template: sms_promo") + 1
    assert said.startswith(
        f"{path}:{line}: error: steps.1.send.template: sms_promo: no sms template named"
    )
    assert str(shop / "templates" / "sms_promo.sms.de.j2") in said
    assert str(BUILTIN_DIR) in said
    assert "`aftersale templates copy warranty_reminder`" in said


CUSTOMERS = """id,email,phone,first_name,last_name,locale,timezone,email_consent,sms_consent,city
c1,anna@example.com,,Anna,Muster,de,Europe/Berlin,yes,no,Berlin
"""
EVENT = {"id": "e1", "type": "purchase", "customer": "c1", "at": "2026-01-05T10:00:00+01:00",
         "order": {"id": "o1", "total": "499.00", "currency": "EUR",
                   "items": [{"sku": "WM-1", "name": "Waschmaschine", "category": "appliance",
                              "price": "499.00", "quantity": 1, "warranty_months": 24}]}}  # fmt: skip
BERLIN_ONLY = """\
id: berlin_only
trigger: {event: purchse, condition: "customer.stadt == 'Berlin'"}
audience: customer.city == 'Berlin' and customer.plz
steps:
  - id: hello
    condition: item.inspection_interval_days
    send: {channel: email, template: thank_you}
"""


def test_after_an_import_names_no_row_carries_are_warned_about(shop: Path, tmp_path: Path):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "events.jsonl").write_text(json.dumps(EVENT) + "\n")
    assert cli("import", "customers", str(tmp_path / "customers.csv"), project=shop).exit_code == 0
    assert cli("import", "events", str(tmp_path / "events.jsonl"), project=shop).exit_code == 0
    path = shop / "journeys" / "berlin_only.yaml"
    path.write_text(BERLIN_ONLY)
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 0, done.output  # warnings only
    warnings = sorted(line for line in done.output.splitlines() if ": warning: " in line)
    invitation = shop / "journeys" / "inspection_invitation.yaml"
    line = next(n for n, text in enumerate(invitation.read_text().splitlines(), 1)
                if "item_condition" in text)  # fmt: skip
    assert (
        f"{invitation}:{line}: warning: trigger.item_condition: no imported item has "
        "`inspection_interval_days`, so it is always empty"
    ) in warnings
    assert [w for w in warnings if w.startswith(str(path)) and "topic: not set" not in w] == [
        f"{path}:2: warning: trigger.condition: no imported customer has the attribute "
        "`stadt`, so it is always empty — did you mean `customer.city`?",
        f"{path}:2: warning: trigger.event: no imported event has the type `purchse` — did "
        "you mean `purchase`?",
        f"{path}:3: warning: audience: no imported customer has the attribute `plz`, so it "
        "is always empty",
        f"{path}:6: warning: steps.0.condition: no imported item has "
        "`inspection_interval_days`, so it is always empty",
    ]


def test_without_data_nothing_is_said_about_names(shop: Path):
    (shop / "journeys" / "berlin_only.yaml").write_text(BERLIN_ONLY)
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 0, done.output
    names = [line for line in done.output.splitlines() if ": warning: " in line]
    assert all("topic: not set" in line for line in names)  # no word about names
    assert not (shop / "aftersale.db").exists()  # validating creates no database


def test_templates_copy_puts_every_language_into_the_project(shop: Path):
    done = cli("templates", "copy", "warranty_offer", project=shop)
    assert done.exit_code == 0, done.output
    copied = sorted(p.name for p in (shop / "templates").iterdir())
    assert copied == sorted(p.name for p in BUILTIN_DIR.glob("warranty_offer.*.j2"))
    assert "warranty_offer.email.de.html.j2" in copied
    again = cli("templates", "copy", "warranty_offer", project=shop)
    assert again.exit_code == 2 and "already exists (--force overwrites)" in again.output
    assert cli("templates", "copy", "warranty_offer", "--force", project=shop).exit_code == 0


@pytest.mark.parametrize("name", ["waranty_offer", "_layout", "../builtin/thank_you", "*"])
def test_templates_copy_refuses_what_is_no_built_in(shop: Path, name: str):
    done = cli("templates", "copy", name, project=shop)
    assert done.exit_code == 2
    assert f"no built-in template {name!r}" in done.output
    assert (
        "built-ins: complaint_followup, inspection_invite, inspection_reminder, loyalty_offer"
        in done.output
    )
    assert ("did you mean 'warranty_offer'?" in done.output) == (name == "waranty_offer")
    assert not (shop / "templates").exists() or not any((shop / "templates").iterdir())


def test_files_saved_in_another_encoding_are_named_with_their_line(shop: Path):
    """A journey and a template saved as Latin-1 ("Prüfung" with a lone 0xfc byte): each is
    an error at its file and line, the other journeys are still checked, no traceback."""
    journey = shop / "journeys" / "inspection_invitation.yaml"
    journey.write_bytes(journey.read_bytes() + "# Prüfung\n".encode("latin-1"))
    last = len(journey.read_bytes().splitlines())
    assert cli("templates", "copy", "thank_you", project=shop).exit_code == 0
    template = shop / "templates" / "thank_you.email.de.txt.j2"
    template.write_bytes("Grüße\n".encode("latin-1") + template.read_bytes())
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output and "UnicodeDecodeError" not in done.output
    errors = [line for line in done.output.splitlines() if ": error: " in line]
    assert f"{journey}:{last}: error: not UTF-8 text: byte 0xfc at column 5" in errors[0]
    [said] = [line for line in errors if "thank_you.email.de.txt.j2" in line]
    assert "thank_you.email.de.txt.j2:1): not UTF-8 text: byte 0xfc at column 3" in said, said
    assert len(errors) == 2, errors  # the other journeys are valid


def test_a_byte_order_mark_is_no_mistake(shop: Path):
    journey = shop / "journeys" / "thank_you.yaml"
    journey.write_bytes(b"\xef\xbb\xbf" + journey.read_bytes())
    config = shop / "aftersale.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 0, done.output
    assert "5 journeys valid" in done.output


def test_settings_saved_in_another_encoding_stop_every_command_in_one_line(shop: Path):
    config = shop / "aftersale.toml"
    lines = config.read_bytes().splitlines()
    config.write_bytes(b"\n".join([*lines, "# Grüße".encode("latin-1")]) + b"\n")
    done = cli("journeys", "list", project=shop)
    assert done.exit_code == 2
    assert done.output.strip() == (
        f"error: {config}:{len(lines) + 1}: not UTF-8 text: byte 0xfc at column 5; "
        "save the file as UTF-8"
    )


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]\n"
    for before, name in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text",
    [
        # Nine lines of aliases, each naming the one before nine times: 9**9 values.
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB,
        "x: &a [1, *a]\n",  # an alias inside itself
    ],
    ids=["billion", "cycle"],
)
def test_a_journey_of_endless_aliases_is_refused_at_once(shop: Path, text: str):
    path = shop / "journeys" / "bomb.yaml"
    path.write_text("id: bomb\n" + text + (shop / "journeys" / "thank_you.yaml").read_text()
                    .split("\n", 1)[1])  # fmt: skip
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 1, done.output
    [said] = [line for line in done.output.splitlines() if ": error: " in line]
    assert said.startswith(f"{path}:1: error: holds more than 10,000 values with its aliases")


def test_aliases_a_journey_reuses_are_fine(shop: Path):
    """A marketer's anchors: the same send for two steps, written once."""
    path = shop / "journeys" / "twice.yaml"
    path.write_text(
        "id: twice\ntopic: offers\ntrigger: {event: purchase}\nsteps:\n"
        "  - id: first\n    wait: 1d\n"
        "    send: &offer {channel: email, template: loyalty_offer, category: marketing}\n"
        "  - id: second\n    wait: 30d\n    send: *offer\n"
        "  - id: third\n    wait: 60d\n    sendd: *offer\n"
    )
    done = cli("journeys", "validate", project=shop)
    [said] = [line for line in done.output.splitlines() if ": error: " in line]
    assert said.startswith(f"{path}:13: error: steps.2.sendd: unknown field `sendd`"), said


def test_nesting_as_deep_as_yaml_allows_is_an_error_not_a_crash(shop: Path):
    path = shop / "journeys" / "deep.yaml"
    path.write_text("id: deep\nx: " + "[" * 999 + "]" * 999 + "\n")
    done = cli("journeys", "validate", project=shop)
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert f"{path}:2: error: x: unknown field `x`" in done.output


def test_the_journey_list_at_80_columns_shows_every_id_whole(shop: Path):
    """The id is what one types next (`journeys show ID`): never cut; nothing ends in …;
    the file is named only where it is not <id>.yaml."""
    done = CliRunner().invoke(app, ["--project", str(shop), "journeys", "list"],
                              env={"COLUMNS": "80"})  # fmt: skip
    assert done.exit_code == 0, done.output
    ids = [path.stem for path in (shop / "journeys").glob("*.yaml")]
    rows = [line.split("│")[1].strip() for line in done.output.splitlines() if "│" in line]
    assert set(ids) <= set(rows), rows
    assert "…" not in done.output and "file" not in done.output.splitlines()[1]
    (shop / "journeys" / "thank_you.yaml").rename(shop / "journeys" / "danke.yaml")
    done = CliRunner().invoke(app, ["--project", str(shop), "journeys", "list"],
                              env={"COLUMNS": "80"})  # fmt: skip
    assert "file" in done.output.splitlines()[1] and "…" not in done.output
