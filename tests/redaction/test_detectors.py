"""Each detector finds its entity, checked (Luhn, IBAN and national-id checksums, phone metadata), and leaves
dates, prices, order numbers and look-alikes that fail the check."""

from __future__ import annotations

import pytest

from cxsync.redaction import detectors as d
from cxsync.redaction.identity import CustomerIdentity

REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "BR", "IN")


def entities(spans):
    return [s.entity for s in spans]


@pytest.mark.parametrize(
    ("region", "written"),
    [
        ("US", "(415) 555-0132"),
        ("US", "+1 415-555-0132"),
        ("GB", "07700 900123"),
        ("GB", "+44 20 7946 0958"),
        ("DE", "030 1234567"),
        ("DE", "+49 151 23456789"),
        ("FR", "06 12 34 56 78"),
        ("FR", "0033 1 42 68 53 00"),
        ("ES", "612 345 678"),
        ("IT", "+39 312 345 6789"),
        ("BR", "(11) 96123-4567"),
        ("IN", "+91 98765 43210"),
    ],
)
def test_phone_numbers_of_many_locales(region, written):
    text = f"call me on {written} please"
    spans = d.PhoneFinder(REGIONS).find(text)
    assert [text[s.start : s.end] for s in spans] == [written], region


def test_national_phone_formats_need_their_region():
    assert d.PhoneFinder(("US",)).find("ring 06 12 34 56 78") == []
    assert entities(d.PhoneFinder(("FR",)).find("ring 06 12 34 56 78")) == ["PHONE"]


@pytest.mark.parametrize(
    "benign",
    [
        "on 2026-03-14 at 10:30:00",
        "12/03/2026",
        "total €1,299.00 or $49.99",
        "order #48291734",
        "ref ORD-2026-004821",
        "invoice 4192341062",
        "EAN 4006763333443",
        "ticket 123456, version 1.2.3",
    ],
)
def test_dates_prices_and_order_numbers_are_no_entity(benign):
    finders = [d.find_emails, d.find_cards, d.find_ibans, d.find_national_ids, d.find_ips, d.PhoneFinder(REGIONS).find]
    assert [s for f in finders for s in f(benign)] == []


def test_cards_must_pass_luhn():
    assert entities(d.find_cards("card 4111 1111 1111 1111")) == ["CARD"]
    assert entities(d.find_cards("card 4111-1111-1111-1111")) == ["CARD"]
    assert d.find_cards("card 4111 1111 1111 1112") == []


def test_ibans_must_pass_their_checksum_and_stop_at_the_next_word():
    text = "IBAN DE89 3704 0044 0532 0130 00 THANKS"
    (span,) = d.find_ibans(text)
    assert text[span.start : span.end] == "DE89 3704 0044 0532 0130 00"
    assert d.find_ibans("IBAN DE88 3704 0044 0532 0130 00") == []


@pytest.mark.parametrize(
    "written",
    ["DNI 12345678Z", "CPF 123.456.789-09", "codice fiscale RSSMRA85T10A562S", "BSN 111222333", "811218-9876"],
)
def test_national_ids_with_a_checksum(written):
    assert entities(d.find_national_ids(f"my id: {written}")) == ["NATIONAL_ID"]


def test_bare_digit_ids_need_the_word_that_names_them():
    assert d.find_national_ids("parcel 111222333 arrived") == []
    assert d.find_national_ids("DNI 12345678A") == []  # wrong check letter


def test_ip_addresses():
    assert entities(d.find_ips("from 192.168.1.20 and 2001:db8::1")) == ["IP", "IP"]
    assert d.find_ips("version 1.2.3 at 10:30:00, 999.1.1.1") == []


def test_emails():
    assert [s.canonical for s in d.find_emails("Mail Anna.B@Example.COM now")] == ["anna.b@example.com"]


def test_customer_names_match_case_and_accent_insensitively_first_name_alone_too():
    matcher = d.CustomerMatcher(CustomerIdentity.of(["José Müller"], ["jose@mail.example"], ["+49 30 1234567"]))
    text = "JOSE here; jose muller; Müllers; José; call 030 1234567; JOSE@MAIL.EXAMPLE"
    found = [(text[s.start : s.end], s.entity) for s in d.resolve(matcher.find(text))]
    assert found == [
        ("JOSE", "NAME"),
        ("jose", "NAME"),
        ("muller", "NAME"),
        ("José", "NAME"),
        ("030 1234567", "PHONE"),
        ("JOSE@MAIL.EXAMPLE", "EMAIL"),
    ]  # "Müllers" is another word


def test_overlapping_spans_keep_the_stronger_entity():
    spans = d.find_cards("4111111111111111") + d.PhoneFinder(REGIONS).find("4111111111111111")
    assert entities(d.resolve(spans)) == ["CARD"]
