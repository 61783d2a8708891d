"""The filters that make a message about several items read naturally."""

from __future__ import annotations

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from templates import TemplateRenderer, sample_context
from templates.wording import WORDING_FILTERS, german_gender

ENV = SandboxedEnvironment(undefined=StrictUndefined)
ENV.filters.update(WORDING_FILTERS)


def say(source: str, locale: str, **context) -> str:
    return ENV.from_string(source).render(locale=locale, **context)


@pytest.mark.parametrize(
    ("locale", "names", "expected"),
    [
        ("en", ["a"], "a"),
        ("en", ["a", "b"], "a and b"),
        ("en", ["a", "b", "c"], "a, b and c"),
        ("de", ["a", "b", "c"], "a, b und c"),
        ("fr", ["a", "b"], "a et b"),
        ("en", [], ""),
    ],
)
def test_and_list_joins_in_the_locale_s_words(locale, names, expected):
    assert say("{{ names | and_list }}", locale, names=names) == expected


@pytest.mark.parametrize(
    ("name", "gender"),
    [
        ("Waschmaschine WM 7", "f"),
        ("Spülmaschine", "f"),
        ("Kühl-Gefrierkombination KS 3", "f"),
        ("Geschirrspüler GS 6", "m"),
        ("Wärmepumpentrockner TR 8", "m"),
        ("Kaffeevollautomat KM 2", "m"),
        ('OLED-Fernseher 55"', "m"),
        ("Notebook 14", "n"),
        ("Soundbar SB 2", "f"),
        ("Bosch Serie 4", None),
        ("iPhone", None),
    ],
)
def test_german_gender_from_the_head_noun(name, gender):
    assert german_gender(name) == gender


def test_your_in_english_and_in_each_german_case():
    names = ["Geschirrspüler", "Waschmaschine", "Notebook", "Bosch Serie 4"]
    together = '{{ names | map("your") | and_list }}'
    assert say(together, "de", names=names) == (
        "Ihren Geschirrspüler, Ihre Waschmaschine, Ihr Notebook und Bosch Serie 4"
    )
    assert say('{{ names | map("your", "nom") | and_list }}', "de", names=names[:2]) == (
        "Ihr Geschirrspüler und Ihre Waschmaschine"
    )
    assert say('{{ names[0] | your("dat") }}', "de", names=names) == "Ihrem Geschirrspüler"
    assert say(together, "en", names=["dishwasher", "washing machine"]) == (
        "your dishwasher and your washing machine"
    )


@pytest.mark.parametrize(
    ("locale", "phrase"),
    [
        ("de", "Ihre Waschmaschine EcoWash 8 und Ihren Geschirrspüler CleanLine 6"),
        ("en", "your EcoWash 8 washing machine and your CleanLine 6 dishwasher"),
    ],
)
@pytest.mark.parametrize(
    "template", ["inspection_invite", "inspection_reminder", "warranty_offer", "warranty_reminder"]
)
def test_the_built_in_per_item_templates_name_every_item_of_a_bundle(template, locale, phrase):
    renderer = TemplateRenderer()
    context = sample_context(locale, bundle=True)
    if template.endswith("reminder"):
        sms = renderer.render_sms(template, locale, context, marketing=True)
        assert phrase in sms.body, sms.body
        assert sms.segments <= 2, sms.body
    else:
        email = renderer.render_email(template, locale, context, marketing=True)
        assert phrase in email.text, email.text
        assert phrase in email.html
