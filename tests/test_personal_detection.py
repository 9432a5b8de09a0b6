"""Personal columns are found by name (four languages, any casing) and by value, and nothing else is.

Columns that only look personal (counts, opt-out flags, names of things) are kept; a decision says
why in words that never quote a cell.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadscore.data.personal import (
    PersonalDecision,
    find_personal_columns,
    iban_is_valid,
    name_words,
    personal_columns,
    personal_decisions,
)
from leadscore.errors import ConfigError

N = 200


def decision_of(frame: pd.DataFrame, column: str, **kwargs) -> PersonalDecision:
    (found,) = [d for d in personal_decisions(frame, **kwargs) if d.column == column]
    return found


def profile_frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Ordinary lead data with nothing personal in it: numbers, dates, categories, codes."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lead_id": [f"{i:07d}" for i in range(n)],  # ids with leading zeros, as text
        "numeric_id": rng.integers(10_000_000, 99_999_999, n),
        "amount": rng.normal(25_000, 9_000, n).round(2),
        "amount_text": [f"{x:,.2f} €".replace(",", "X").replace(".", ",").replace("X", ".")
                        for x in rng.uniform(1e3, 1e7, n)],
        "created": pd.date_range("2025-01-01", periods=n, freq="D"),
        "created_text": [f"{d:%d.%m.%Y}" for d in pd.date_range("2025-01-01", periods=n, freq="D")],
        "iso_date": [f"{d:%Y-%m-%d %H:%M}" for d in pd.date_range("2025-01-01", periods=n, freq="7h")],
        "area_number": rng.integers(1000, 99999, n),
        "area_text": [f"{x:05d}" for x in rng.integers(1000, 99999, n)],
        "segment": rng.choice(["SEG-01", "SEG-02", "A-0123-4567", "B-0987-6543"], n),
        "sku": [f"SKU-{x:08d}" for x in rng.integers(0, 10**8, n)],
        "period": rng.choice(["01/2024 - 12/2024", "2019-2024", "Q1 2025"], n),
        "ratio_text": [f"{x:.9f}" for x in rng.random(n)],
        "version": rng.choice(["v1.2.3", "2.10.1", "release 3.4"], n),
        "country": rng.choice(["Deutschland", "France", "España"], n),
        "lead_source": rng.choice(["Webinar", "Paid Search", "Select", "k. A."], n),
        "converted": rng.random(n) < 0.2,
    })


# ---------------------------------------------------------------------------------------------
# By name
# ---------------------------------------------------------------------------------------------

EXPORT_NAMES = ["E-Mail-Adresse", "Telefonnummer", "Vorname", "Nachname", "Straße", "emailAddress", "phoneNumber",
                "linkedin_url", "notes"]


@pytest.mark.parametrize("column", EXPORT_NAMES)
def test_names_from_real_exports_are_personal(column):
    # Given a column named as in German and English CRM exports
    frame = pd.DataFrame({column: ["x"] * 3, "converted": [True, False, True]})
    # When decided, Then it is personal by name, in either API
    decision = decision_of(frame, column)
    assert decision.personal and decision.kind == "name", f"{column!r} must be personal by name: {decision}"
    assert personal_columns([column, "converted"], []) == [column], f"the name-only wrapper drops {column!r} too"


# Each language, each concept, each form: snake_case, camelCase, PascalCase, kebab-case, spaced, UPPER.
PERSONAL_WORDS = {
    "English": [["email"], ["e", "mail"], ["email", "address"], ["phone"], ["phone", "number"], ["mobile"],
                ["telephone"], ["cell", "phone"], ["first", "name"], ["last", "name"], ["full", "name"], ["surname"],
                ["given", "name"], ["name"], ["street"], ["street", "address"], ["address"], ["zip", "code"],
                ["postcode"], ["date", "of", "birth"], ["birthday"], ["ssn"], ["tax", "id"], ["iban"], ["bic"],
                ["account", "number"], ["ip", "address"], ["linkedin", "profile"], ["twitter", "handle"],
                ["xing"], ["facebook", "url"], ["notes"], ["comment"], ["description"], ["contact", "name"]],
    "German": [["e", "mail", "adresse"], ["telefonnummer"], ["telefon"], ["handy"], ["handynummer"], ["mobilnummer"],
               ["vorname"], ["nachname"], ["straße"], ["adresse"], ["anschrift"], ["plz"], ["postleitzahl"],
               ["geburtsdatum"], ["steuer", "id"], ["kontonummer"], ["notizen"], ["kommentar"], ["bemerkung"],
               ["rechnungsadresse"], ["ip", "adresse"]],
    "French": [["courriel"], ["adresse", "e", "mail"], ["téléphone"], ["téléphone", "portable"], ["portable"],
               ["prénom"], ["nom"], ["nom", "de", "famille"], ["rue"], ["code", "postal"], ["date", "de", "naissance"],
               ["numéro", "de", "sécurité", "sociale"], ["remarque"], ["commentaire"]],
    "Spanish": [["correo"], ["correo", "electrónico"], ["teléfono"], ["móvil"], ["celular"], ["nombre"],
                ["apellidos"], ["nombre", "completo"], ["dirección"], ["calle"], ["código", "postal"],
                ["fecha", "de", "nacimiento"], ["dni"], ["comentario"], ["nota"], ["observaciones"]],
}
ALL_PERSONAL_WORDS = [(language, words) for language, lists in PERSONAL_WORDS.items() for words in lists]

FORMS = {
    "snake": lambda w: "_".join(w),
    "camel": lambda w: w[0] + "".join(x.capitalize() for x in w[1:]),
    "pascal": lambda w: "".join(x.capitalize() for x in w),
    "kebab": lambda w: "-".join(w),
    "spaced": lambda w: " ".join(w),
    "capitalised": lambda w: " ".join(x.capitalize() for x in w),
    "upper": lambda w: "_".join(x.upper() for x in w),
}


@pytest.mark.parametrize("language", sorted(PERSONAL_WORDS))
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_language_in_every_form_is_personal(language, form):
    # Given every personal term of one language written in one form
    names = [FORMS[form](words) for words in PERSONAL_WORDS[language]]
    # When only names are looked at, Then every one is personal
    missed = sorted(set(names) - set(personal_columns(names, [])))
    assert not missed, f"{language} names in {form} form not found personal: {missed}"


@given(term=st.sampled_from(ALL_PERSONAL_WORDS), form=st.sampled_from(sorted(FORMS)),
       extra=st.sampled_from(["", "1", "2", "work", "privat", "primary"]), data=st.data())
def test_generated_personal_names_in_random_forms_are_personal(term, form, extra, data):
    # Given a personal term in a random language, form and random casing of its letters, maybe numbered
    language, words = term
    words = [*words, extra] if extra else list(words)
    if form in ("snake", "kebab", "spaced"):
        # Each word in its own casing: separators split the words, so casing must not split them again.
        cases = data.draw(st.lists(st.sampled_from([str.lower, str.upper, str.capitalize]),
                                   min_size=len(words), max_size=len(words)))
        words = [case(word) for case, word in zip(cases, words, strict=True)]
    name = FORMS[form](words)
    frame = pd.DataFrame({name: ["n/a"] * 5})
    # When decided, Then it is personal, and its reason speaks of the name
    decision = decision_of(frame, name)
    assert decision.personal and decision.kind == "name", f"{language} {words} as {name!r}: {decision}"


def test_names_are_split_into_words_on_separators_case_changes_and_accents():
    assert name_words("E-Mail-Adresse") == ["e", "mail", "adresse"]
    assert name_words("phoneNumber2") == ["phone", "number", "2"]
    assert name_words("IPAddress") == ["ip", "address"]
    assert name_words("Straße") == ["strasse"], "ß is spelled ss"
    assert name_words("Téléphone portable") == ["telephone", "portable"], "accents are folded"


NOT_PERSONAL_NAMES = [
    "company_name", "Firmenname", "campaign_name", "page_name", "lead_source", "email_opens", "emails_clicked",
    "email_domain", "Do Not Email", "Do Not Call", "Opt-out", "unsubscribed", "company", "Firmengröße",
    "HasOptedOutOfEmail", "Email Opt Out", "DONOTEMAIL", "email_open_count_90d", "last_email_date", "E-Mails",
    "phone_calls", "is_mobile", "has_phone", "address_city", "ip_country", "nom_entreprise", "Nombre de la empresa",
    "account_name", "Kampagnenname", "job_title", "country", "city", "Wohnort", "age", "industry", "company_size",
    "utm_campaign", "voicemail_left", "last_contact_date", "contact_attempts", "linkedin_campaign_clicks",
    "day_of_week", "emp.var.rate", "poutcome", "source_detail", "comment_count",
]


@pytest.mark.parametrize("column", NOT_PERSONAL_NAMES)
def test_names_that_only_mention_a_channel_are_kept(column):
    # Given a count, a consent flag, a name of a thing or profile data, holding no personal values
    frame = pd.DataFrame({column: ["yes", "no", "no"] * 10, "converted": [True, False] * 15})
    # When decided, Then it is kept, and never by a silent rule
    decision = decision_of(frame, column)
    assert not decision.personal, f"{column!r} is behaviour or profile, not personal: {decision.why}"
    assert decision.why, "a kept column says why"
    assert personal_columns([column], []) == [], f"the name-only wrapper keeps {column!r} too"


def test_an_opt_out_flag_says_it_is_a_consent_flag_and_is_logged(caplog):
    # Given a Salesforce-style opt-out flag beside a real e-mail column
    frame = pd.DataFrame({"Do Not Email": [True, False, True], "Email": ["a@example.com", "b@example.org", "c@x.de"]})
    # When the personal columns are found, with logging on
    caplog.set_level(logging.INFO, logger="leadscore.data.personal")
    found = find_personal_columns(frame)
    # Then only the e-mail column goes, and the flag is kept with a logged reason
    assert found == ["Email"], "the opt-out flag is behaviour, the e-mail column personal"
    assert "opt-out flag" in decision_of(frame, "Do Not Email").why
    assert "'Do Not Email' is kept" in caplog.text and "opt-out" in caplog.text, "keeping it is logged with the reason"
    assert "'Email' is personal" in caplog.text, "dropping is logged with the reason"
    assert "example" not in caplog.text, "no cell reaches the log"


def test_a_bare_contact_column_is_a_person_unless_its_values_are_a_few_categories():
    # Given `contact` as the bank marketing data has it (the channel) and as a CRM has it (a person)
    rng = np.random.default_rng(0)
    channel = pd.DataFrame({"contact": rng.choice(["cellular", "telephone"], 500)})
    people = pd.DataFrame({"Kontakt": [f"Person {chr(65 + i % 26)}{i}" for i in range(500)]})
    # When decided, Then the channel is kept and the person is personal
    assert not decision_of(channel, "contact").personal, "two repeated categories are a channel, not people"
    assert decision_of(people, "Kontakt").personal, "a column named just Kontakt holding many names is a person"
    assert personal_columns(["contact"], []) == [], "without values, a bare contact column is kept"


# ---------------------------------------------------------------------------------------------
# By value
# ---------------------------------------------------------------------------------------------

VALID_IBANS = ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606",
               "ES91 2100 0418 4502 0005 1332"]


def test_iban_check_digits():
    assert all(iban_is_valid(iban) for iban in VALID_IBANS), "registry examples are valid"
    assert not iban_is_valid("DE89 3704 0044 0532 0130 01"), "one changed digit breaks the mod-97 check"
    assert not iban_is_valid("DE89 3704 0044 0532 0130"), "a German IBAN has 22 characters"


LEAKS = {
    "e-mail": "Kontakt über j.mueller+crm@beispiel-firma.de aufgenommen",
    "phone international": "Rückruf unter +49 (0) 30 123 456 78 erbeten",
    "phone German national": "Tel. 030/1234567",
    "phone German mobile": "Handy 0171-2345678",
    "phone French": "joindre au 01 23 45 67 89 le matin",
    "phone French dots": "tél 06.12.34.56.78",
    "phone Spanish": "llamar al 612 34 56 78",
    "phone E.164": "+34612345678",
    "IBAN": "bitte auf DE89 3704 0044 0532 0130 00 überweisen",
    "IBAN compact": "IBAN:GB82WEST12345698765432",
    "LinkedIn": "found via https://www.linkedin.com/in/jane-doe-4711/",
    "XING": "https://www.xing.com/profile/Max_Mustermann",
    "Twitter": "https://twitter.com/janedoe",
    "IPv4": "form submitted from 192.168.17.42",
    "IPv6": "client 2001:db8:85a3::8a2e:370:7334",
}


@pytest.mark.parametrize("column", ["source_detail", "comment_count", "segment"])
@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_one_personal_value_in_an_innocently_named_column_makes_it_personal(leak, column):
    # Given a text column of ordinary categories with ONE personal value among them
    values = ["Webinar", "Paid Search", "Trade fair 2025", "Partner referral"] * (N // 4)
    values[137] = LEAKS[leak]
    frame = pd.DataFrame({column: values, "amount": np.arange(N, dtype=float)})
    # When decided
    decision = decision_of(frame, column)
    # Then it is personal by value, with a count and no value
    assert decision.personal and decision.kind == "value", f"{leak} in {column!r} must be found: {decision}"
    assert f"1 of {N} sampled values" in decision.why, f"the count is reported: {decision.why}"
    assert LEAKS[leak] not in decision.why and not any(part in decision.why for part in LEAKS[leak].split()
                                                        if len(part) > 4), "no part of the value is in the reason"
    assert find_personal_columns(frame) == [column]


def test_ordinary_numbers_dates_ids_codes_and_amounts_are_not_personal():
    # Given numbers, amounts, dates, postcodes, ids and category codes, as numbers and as text
    frame = profile_frame()
    # When decided, Then nothing is personal
    personal = {d.column: d.why for d in personal_decisions(frame) if d.personal}
    assert not personal, f"found personal where nothing is: {personal}"


def test_numeric_columns_are_not_searched():
    # Given phone-like and postcode-like numbers stored as numbers
    frame = pd.DataFrame({"value": np.full(50, 4930123456789), "plz_number": np.full(50, 10115)})
    # When decided, Then they are kept as numbers: only text can hold a formatted personal value
    decision = decision_of(frame, "value")
    assert not decision.personal and "not text" in decision.why, decision


def test_a_value_scan_is_a_seeded_sample():
    # Given a large column with e-mails in 10 % of the cells
    n = 20_000
    values = np.where(np.arange(n) % 10 == 0, "someone@example.com", "organic")
    frame = pd.DataFrame({"source_detail": values})
    # When decided on samples of 100 cells, twice with one seed and once with another
    first = decision_of(frame, "source_detail", sample_rows=100, seed=3)
    again = decision_of(frame, "source_detail", sample_rows=100, seed=3)
    other = decision_of(frame, "source_detail", sample_rows=100, seed=4)
    # Then the same seed gives the same decision, and at most 100 cells were searched
    assert first == again, "the same frame and seed give the same decision"
    assert first.personal and other.personal, "10 % of cells is found in any sample of 100"
    assert "of 100 sampled values" in first.why, first.why


def test_blank_cells_do_not_count_as_sampled():
    values = ["", "  ", None] * 300 + ["call +44 20 7946 0958"]
    decision = decision_of(pd.DataFrame({"source_detail": values}), "source_detail")
    assert decision.personal and "1 of 1 sampled values" in decision.why, decision.why


@given(email=st.emails(), before=st.text("abcdefghijklmnopqrstuvwxyzäöüßéñ ,;!?ABC0123", max_size=60),
       after=st.text("abcdefghijklmnopqrstuvwxyzäöüßéñ ,;!?ABC0123", max_size=60), where=st.integers(0, 39))
def test_generated_emails_embedded_in_free_text_are_found(email, before, after, where):
    # Given free text in which one cell holds an e-mail address between words
    values = [f"Note {i}: lead asked about pricing for {i % 7 + 1} seats" for i in range(40)]
    values[where] = f"{before} {email} {after}"
    frame = pd.DataFrame({"source_detail": values})
    # When decided, Then the column is personal by value and the reason holds no part of the address
    decision = decision_of(frame, "source_detail")
    assert decision.personal and decision.kind == "value", f"an e-mail address in free text must be found: {decision}"
    assert "@" not in decision.why and email not in decision.why


@given(marker=st.from_regex(r"[A-Z]{6,10}", fullmatch=True))
def test_reasons_never_hold_a_sampled_value(marker):
    # Given personal values carrying a distinctive marker, in personal, innocent and overruled columns
    frame = pd.DataFrame({
        "email": [f"{marker}.{i}@example.com" for i in range(30)],
        "source_detail": [f"{marker} +49 151 {i:08d}" for i in range(30)],
        "campaign_memo": [f"{marker} said to call back next week, row {i}" for i in range(30)],
        "free": [f"{marker} lead number {i} wrote a long message about us" for i in range(30)],
        "kept": [f"{marker}" for _ in range(30)],
    })
    # When decided, also with a column overruled
    decisions = personal_decisions(frame, declared=["campaign_memo"], not_personal=["source_detail"])
    # Then no reason holds the marker
    leaked = [d for d in decisions if marker in d.why]
    assert not leaked, f"reasons quote values: {leaked}"


# ---------------------------------------------------------------------------------------------
# Free text, declarations, overrules and the wrappers
# ---------------------------------------------------------------------------------------------


def test_long_distinct_text_is_free_text_and_short_categories_are_not():
    rng = np.random.default_rng(1)
    words = np.array(["pricing", "demo", "budget", "next", "quarter", "team", "wants", "trial", "call", "later"])
    frame = pd.DataFrame({
        "source_detail": [" ".join(rng.choice(words, 8)) for _ in range(N)],
        "lead_source": rng.choice(["Webinar", "Paid Search", "Organic"], N),
        "lead_uuid": [f"{rng.integers(0, 2**63):032x}-{i:04d}" for i in range(N)],
    })
    decisions = {d.column: d for d in personal_decisions(frame)}
    assert decisions["source_detail"].kind == "free_text" and decisions["source_detail"].free_text, \
        "long, mostly distinct text of words is free text"
    assert not decisions["source_detail"].personal, "free text alone is not personal"
    assert not decisions["lead_source"].free_text, "a few repeated categories are not free text"
    assert not decisions["lead_uuid"].free_text, "long distinct ids without words are not free text"


def test_declared_columns_are_personal_and_not_personal_overrules_names_and_values():
    frame = pd.DataFrame({
        "account_memo": ["prefers calls after 5pm"] * 10,
        "email": ["a@example.com"] * 10,
        "source_detail": ["see www.example.com or mail info@example.com"] * 10,
        "segment": ["A"] * 10,
    })
    decisions = {d.column: d for d in personal_decisions(
        frame, declared=["account_memo", "absent"], not_personal=["email", "source_detail"])}
    assert decisions["account_memo"].personal and decisions["account_memo"].kind == "declared"
    assert not decisions["email"].personal and decisions["email"].kind == "not_personal", "the config overrules a name"
    assert "overruled by data.not_personal" in decisions["email"].why
    assert not decisions["source_detail"].personal, "the config overrules values"
    assert "absent" not in decisions, "a declared column that is absent gets no decision"
    assert [d.column for d in personal_decisions(frame)] == list(frame.columns), "one decision per column, in order"
    assert find_personal_columns(frame, declared=["account_memo"], not_personal=["email"]) == \
        ["account_memo", "source_detail"]


def test_a_column_both_declared_and_not_personal_is_a_config_error():
    with pytest.raises(ConfigError, match="both"):
        personal_decisions(pd.DataFrame({"x": [1]}), declared=["x"], not_personal=["x"])


def test_the_name_only_wrapper_keeps_its_contract():
    # Given the call training/dataset.py and features/events.py make today
    columns = ["lead_id", "first_name", "company_name", "email", "email_opens", "internal_ref", "phone", "country"]
    # Then declared columns present plus personal names come back, in column order
    assert personal_columns(columns, ["internal_ref", "not_there"]) == ["first_name", "email", "internal_ref", "phone"]
    assert personal_columns(columns, [], not_personal=["phone"]) == ["first_name", "email"]
