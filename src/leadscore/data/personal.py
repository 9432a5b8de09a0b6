"""Which columns hold personal data: declared ones, those whose names say so, and those whose values do.

Personal columns are removed before anything else touches the data, so they can never become
features, reach MLflow (params, artifacts, input examples) or appear in logs. Every column gets a
`PersonalDecision` that says why it is or is not personal, in words that never quote a cell.

The rules, in the order they are applied to each column:

1. **Declared** (`data.personal_columns`): personal.
2. **Overruled** (`data.not_personal`): not personal, whatever its name or values look like.
3. **By name**, in English, German, French and Spanish, in any casing and with any separators
   (`E-Mail-Adresse`, `emailAddress`, `phone-number`, `Téléphone`, `Straße`, `NOMBRE`). Names are
   folded (accents dropped, `ß` -> `ss`), split into words on separators and case changes, and
   compared word by word, never as substrings, so `company` or `campaign` never match `pan` or `name`.
   - e-mail, phone, address, postcode, IP address, social profile (LinkedIn, XING, Twitter/X,
     Facebook, ...), free-text notes: personal, unless another word makes the column *about* the
     channel rather than the value: consent and opt-out flags (`Do Not Email`, `email_opt_out`,
     `has_phone`), counts and behaviour (`email_opens`, `emails_clicked`, `phone_calls`,
     `last_email_date`), kinds and validity (`email_domain`, `phone_type`, `email_verified`), or
     place (`address_city`, `ip_country`). Plurals are counts, not addresses (`emails`, `E-Mails`).
     An e-mail domain names an organisation, a profile-fit signal, not a person.
   - person names (`name`, `first name`, `Vorname`, `nom`, `apellidos`, ...): personal, unless the
     name is of a thing (`company_name`, `Firmenname`, `campaign_name`, `nom_entreprise`); a person
     word wins over a thing word (`company_contact_name` is personal).
   - birth dates, tax and social security ids, IBAN/BIC, account, card and passport numbers: personal.
   - a column named just `contact` (`Kontakt`, `contacto`, `Ansprechpartner`): personal, unless its
     values are a handful of repeated categories, as in the bank marketing data where `contact` is
     the channel (`cellular`/`telephone`). Without values (`personal_columns`) it is kept.
   - city, region, country, age, job title, company: profile data the fit score is built on; not
     personal on their own.
4. **By value**, for text columns only: a seeded sample of up to `sample_rows` non-empty cells is
   searched for e-mail addresses, phone numbers (a leading `+`, `00` or `0`, 8 to 15 digits and
   separators, or a Spanish national grouping; not dates, decimals, amounts or bare ids), IBANs (ISO 13616 check digits), personal
   profile URLs and IPv4/IPv6 addresses. ONE matching cell is enough: a single address in a learned
   category becomes a category level and is pickled with the model. Numeric, boolean and date
   columns are not searched: they cannot hold these shapes.
5. **Free text**: a text column whose sampled values are mostly distinct (more than half), long
   (more than 20 characters on average) and made of words (most hold a space) is marked
   `free_text`. It is not personal by itself; whoever learns categories refuses it unless declared.

Decisions report counts, never values: a `why` quotes column names and rule words only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from leadscore.errors import ConfigError

_log = logging.getLogger(__name__)

DecisionKind = Literal["declared", "not_personal", "name", "value", "free_text", "kept"]


@dataclass(frozen=True)
class PersonalDecision:
    """Whether one column is personal, which rule decided it, and why, in words that quote no cell.

    `kind` is the rule that decided: `declared` (data.personal_columns), `not_personal`
    (data.not_personal overruled the detection), `name`, `value`, `free_text` (not personal, but
    long, mostly distinct text that must not be learned as a category unless declared) or `kept`
    (nothing personal found). `free_text` is true for every column whose sampled values look like
    free text, whatever decided `personal`.
    """

    column: str
    personal: bool
    kind: DecisionKind
    why: str
    free_text: bool = False


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

_EN, _DE, _FR, _ES = "English", "German", "French", "Spanish"

# Concept -> {term: languages}. A term is written as words; it matches a run of a column name's
# words that spells it, whatever the separators (`e-mail` = `email` = `E Mail`, `firstName`).
_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "e-mail": {
        "email": (_EN, _DE), "e mail": (_EN, _DE, _FR), "mail": (_EN, _DE), "email address": (_EN,),
        "emailadresse": (_DE,), "mailadresse": (_DE,), "courriel": (_FR,), "adresse email": (_FR,),
        "correo": (_ES,), "correo electronico": (_ES,),
    },
    "phone": {
        "phone": (_EN,), "telephone": (_EN, _FR), "tel": (_EN, _DE, _FR, _ES), "phone number": (_EN,),
        "mobile": (_EN,), "cell": (_EN,), "cellphone": (_EN,), "fax": (_EN, _DE, _FR, _ES),
        "telefon": (_DE,), "telefonnummer": (_DE,), "handy": (_DE,), "handynummer": (_DE,),
        "mobil": (_DE,), "mobilnummer": (_DE,), "mobiltelefon": (_DE,), "mobilfunknummer": (_DE,),
        "festnetz": (_DE,), "faxnummer": (_DE,), "rufnummer": (_DE,), "portable": (_FR,),
        "numero de telephone": (_FR,), "telefono": (_ES,), "movil": (_ES,), "celular": (_ES,),
        "whatsapp": (_EN, _DE, _FR, _ES),
    },
    "address": {
        "address": (_EN,), "addr": (_EN,), "street": (_EN,), "house number": (_EN,),
        "adresse": (_DE, _FR), "anschrift": (_DE,), "strasse": (_DE,), "hausnummer": (_DE,),
        "wohnadresse": (_DE,), "rue": (_FR,), "direccion": (_ES,), "domicilio": (_ES,), "calle": (_ES,),
    },
    "postcode": {
        "zip": (_EN,), "zipcode": (_EN,), "postcode": (_EN,), "postal code": (_EN,), "plz": (_DE,),
        "postleitzahl": (_DE,), "code postal": (_FR,), "codigo postal": (_ES,),
    },
    "person name": {
        "name": (_EN, _DE), "first name": (_EN,), "last name": (_EN,), "full name": (_EN,),
        "given name": (_EN,), "family name": (_EN,), "middle name": (_EN,), "surname": (_EN,),
        "forename": (_EN,), "vorname": (_DE,), "nachname": (_DE,), "familienname": (_DE,),
        "prenom": (_FR,), "nom": (_FR,), "nom de famille": (_FR,), "nombre": (_ES,),
        "apellido": (_ES,), "apellidos": (_ES,),
    },
    "birth date": {
        "birth": (_EN,), "birthday": (_EN,), "birthdate": (_EN,), "dob": (_EN,), "geburtsdatum": (_DE,),
        "geburtstag": (_DE,), "geburtsort": (_DE,), "naissance": (_FR,), "date de naissance": (_FR,),
        "anniversaire": (_FR,), "nacimiento": (_ES,), "fecha de nacimiento": (_ES,), "cumpleanos": (_ES,),
    },
    "personal id number": {
        "ssn": (_EN,), "social security": (_EN,), "tax id": (_EN,), "tax number": (_EN,),
        "national id": (_EN,), "passport": (_EN,), "id card": (_EN,), "steuer id": (_DE,),
        "steuernummer": (_DE,), "steueridentifikationsnummer": (_DE,), "sozialversicherungsnummer": (_DE,),
        "personalausweis": (_DE,), "ausweisnummer": (_DE,), "reisepass": (_DE,),
        "securite sociale": (_FR,), "numero fiscal": (_FR, _ES), "passeport": (_FR,),
        "seguridad social": (_ES,), "nif": (_ES,), "dni": (_ES,), "pasaporte": (_ES,),
    },
    "bank account": {
        "iban": (_EN, _DE, _FR, _ES), "bic": (_EN, _DE, _FR, _ES), "swift": (_EN,),
        "account number": (_EN,), "bank account": (_EN,), "credit card": (_EN,), "card number": (_EN,),
        "kontonummer": (_DE,), "bankverbindung": (_DE,), "kreditkarte": (_DE,),
        "numero de compte": (_FR,), "carte bancaire": (_FR,), "numero de cuenta": (_ES,), "tarjeta": (_ES,),
    },
    "IP address": {
        "ip": (_EN, _DE, _FR, _ES), "ip address": (_EN,), "ipv4": (_EN,), "ipv6": (_EN,),
        "ipadresse": (_DE,),
    },
    "social profile": {
        "linkedin": (_EN,), "xing": (_DE,), "twitter": (_EN,), "facebook": (_EN,), "instagram": (_EN,),
        "tiktok": (_EN,), "social profile": (_EN,), "profile url": (_EN,), "twitter handle": (_EN,),
    },
    "free-text notes": {
        "note": (_EN,), "notes": (_EN,), "comment": (_EN,), "comments": (_EN,), "remark": (_EN,),
        "remarks": (_EN,), "description": (_EN, _FR), "memo": (_EN, _DE), "message": (_EN,),
        "free text": (_EN,), "notiz": (_DE,), "notizen": (_DE,), "kommentar": (_DE,), "kommentare": (_DE,),
        "bemerkung": (_DE,), "bemerkungen": (_DE,), "anmerkung": (_DE,), "anmerkungen": (_DE,),
        "beschreibung": (_DE,), "nachricht": (_DE,), "freitext": (_DE,), "remarque": (_FR,),
        "remarques": (_FR,), "commentaire": (_FR,), "commentaires": (_FR,), "nota": (_ES,), "notas": (_ES,),
        "comentario": (_ES,), "comentarios": (_ES,), "observaciones": (_ES,), "descripcion": (_ES,),
        "mensaje": (_ES,),
    },
    # Only a column named by one of these alone: `last_contact_date` is behaviour, `contact` a person.
    "contact": {
        "contact": (_EN, _FR), "contact person": (_EN,), "kontakt": (_DE,), "kontaktperson": (_DE,),
        "ansprechpartner": (_DE,), "contacto": (_ES,), "persona de contacto": (_ES,),
    },
}

# German writes compounds as one word: `Rechnungsadresse`, `Kundentelefon`, `Firmenname`. These
# heads match as the end of a longer word; the rest of the word then counts as a qualifier.
_COMPOUND_HEADS: dict[str, str] = {
    "adresse": "address", "anschrift": "address", "strasse": "address", "telefon": "phone",
    "telefonnummer": "phone", "email": "e-mail", "name": "person name",
}
# ... and these as its start (`Emailadresse`, `Telefonnummer`, `Geburtsjahr`).
_COMPOUND_STARTS: dict[str, str] = {"email": "e-mail", "telefon": "phone", "geburts": "birth date"}
# Words that look like compounds of those heads and are not: phone calls are behaviour.
_NOT_COMPOUNDS = frozenset({"telefonat", "telefonate", "telefonisch", "telefonie", "voicemail"})

# Words that make a column about the channel rather than the address, by what they say about it.
_EXCUSES: dict[str, frozenset[str]] = {
    "consent": frozenset({
        "not", "dnc", "donotcall", "donotemail", "nicht", "kein", "keine", "pas", "optin", "optout", "opt",
        "opted", "consent", "consents", "einwilligung", "zustimmung", "consentement", "consentimiento",
        "unsubscribed", "unsubscribe", "unsub", "subscribed", "subscribe", "subscription", "abgemeldet",
        "abmeldung", "abbestellt", "desabonne", "desinscrito", "baja", "permission", "permissions",
        "allowed", "allow", "erlaubt", "preference", "preferences", "blocked", "blacklist",
        "blacklisted", "gdpr", "dsgvo", "rgpd", "donot",
    }),
    "flag": frozenset({"is", "has", "hat", "ist", "can", "darf", "known", "provided", "present", "missing"}),
    "activity": frozenset({
        "count", "counts", "cnt", "total", "sum", "anzahl", "opens", "open", "opened", "clicks", "click",
        "clicked", "sent", "send", "sends", "delivered", "bounces", "bounce", "bounced", "replies", "reply",
        "replied", "received", "views", "viewed", "impressions", "reads", "spend", "cost", "ctr", "rate",
        "ratio", "share", "pct", "percent", "score", "engagement", "campaign", "campaigns", "ad", "ads",
        "template", "subject", "calls", "call", "anrufe", "anruf", "llamadas", "appels", "attempts",
        "attempt", "visits", "sessions", "activity", "activities", "events", "interactions", "touches",
        "touch", "first", "last", "date", "at", "time", "datum", "days", "since", "frequency",
        "oeffnungen", "offnungen", "klicks", "ouvertures", "clics", "aperturas", "followers", "source",
        "length", "words",
    }),
    "kind": frozenset({
        "domain", "domains", "provider", "type", "typ", "format", "status", "valid", "validity", "verified",
        "verification", "confirmed", "bestatigt", "device", "app", "browser", "os", "platform", "web",
        "website", "language", "sprache", "langue", "idioma",
    }),
    "place": frozenset({
        "country", "land", "pais", "pays", "city", "stadt", "ort", "ciudad", "ville", "region", "state",
        "bundesland", "location", "standort", "timezone", "geo",
    }),
}
_EXCUSE_WHY = {
    "consent": "opt-out flag, not personal: a yes/no column about contact consent",
    "flag": "a yes/no flag about the channel, not the value itself",
    "activity": "a count or behaviour measure about the channel, not an address",
    "kind": "a kind, domain or validity of the channel: names an organisation or a category, not a person",
    "place": "a place (city, region, country) is profile data used for fit, not personal on its own",
}
_EXCUSED_BY: dict[str, tuple[str, ...]] = {
    "e-mail": ("consent", "flag", "activity", "kind"),
    "phone": ("consent", "flag", "activity", "kind", "place"),
    "address": ("consent", "flag", "activity", "kind", "place"),
    "postcode": ("flag", "kind"),
    "IP address": ("flag", "activity", "kind", "place"),
    "social profile": ("consent", "flag", "activity", "kind"),
    "free-text notes": ("flag", "activity"),
    "birth date": (),
    "personal id number": (),
    "bank account": (),
    "contact": (),
}

# A name of a person, or of a thing: `contact_name` is personal, `campaign_name` is not.
_PERSON_WORDS = frozenset({
    "first", "last", "full", "given", "family", "middle", "sur", "fore", "display", "user", "benutzer",
    "contact", "kontakt", "person", "lead", "vor", "nach", "voll", "familien", "ruf", "geburts",
    "madchen", "kunden", "customer", "client", "owner", "apellido", "completo", "complet", "famille",
})
_THING_WORDS = frozenset({
    "company", "companies", "firma", "firmen", "unternehmen", "unternehmens", "organisation", "organization",
    "org", "account", "accounts", "campaign", "kampagne", "kampagnen", "campagne", "campana", "page", "seite",
    "seiten", "pagina", "product", "produkt", "produkts", "produit", "producto", "form", "formular",
    "formulaire", "formulario", "event", "events", "veranstaltung", "evenement", "evento", "file", "datei",
    "fichier", "archivo", "list", "liste", "lista", "domain", "host", "source", "quelle", "origen", "utm",
    "job", "stage", "plan", "segment", "industry", "branche", "browser", "device", "os", "app", "program",
    "programm", "webinar", "asset", "content", "entreprise", "societe", "empresa", "compania", "project",
    "projekt", "team", "group", "gruppe", "tag", "category", "kategorie", "brand", "marke", "marque",
    "marca", "site", "website", "server", "table", "column", "field", "feld", "variable", "model",
    "partner", "vendor", "lieferant", "shop", "store", "channel", "kanal", "medium", "template", "vorlage",
    "country", "city", "land", "stadt", "ort", "region", "pays", "ville", "pais", "ciudad", "department",
    "abteilung", "role", "rolle", "title", "titel", "position", "bank", "school", "university",
})


@dataclass(frozen=True)
class _NameMatch:
    concept: str
    word: str  # the name's own words that matched, joined by spaces: column-name text, never a value
    languages: tuple[str, ...]
    qualifiers: frozenset[str]  # the name's other words, plus the rest of a compound


def _fold(text: str) -> str:
    """Accents dropped and `ß` spelled `ss`, so `Straße` is `Strasse` and `Téléphone` is `Telephone`."""
    text = text.replace("ß", "ss").replace("ẞ", "SS")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


_CASE_CHANGE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def name_words(column: object) -> list[str]:
    """A column name as lower-case words: split on separators, case changes and digits, accents folded.

    `E-Mail-Adresse` -> ['e', 'mail', 'adresse']; `phoneNumber2` -> ['phone', 'number', '2'];
    `IPAddress` -> ['ip', 'address']; `Straße` -> ['strasse'].
    """
    spaced = _CASE_CHANGE.sub(" ", _fold(str(column)))
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def _term_index() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Every term by its spelling without spaces: what a run of a name's words must join to."""
    index: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for concept, terms in _TERMS.items():
        for term, languages in terms.items():
            index.setdefault(term.replace(" ", ""), []).append((concept, languages))
    return index


_TERM_INDEX = _term_index()
_LONGEST_TERM_WORDS = max(len(t.split()) for terms in _TERMS.values() for t in terms) + 1


def _name_matches(words: Sequence[str]) -> list[_NameMatch]:
    """Every personal term spelled by a run of `words`, longest runs first."""
    matches = []
    for size in range(min(len(words), _LONGEST_TERM_WORDS), 0, -1):
        for start in range(len(words) - size + 1):
            run = words[start:start + size]
            joined = "".join(run)
            others = frozenset(words[:start]) | frozenset(words[start + size:])
            for concept, languages in _TERM_INDEX.get(joined, ()):
                matches.append(_NameMatch(concept, " ".join(run), languages, others))
            # Compounds are single words; runs of several words are spelled by the terms above.
            if size > 1 or joined in _TERM_INDEX or joined in _NOT_COMPOUNDS:
                continue
            for head, concept in _COMPOUND_HEADS.items():
                rest = joined[: -len(head)]
                if joined.endswith(head) and len(rest) >= 2:
                    matches.append(_NameMatch(concept, joined, ("German compound",), others | {rest}))
            for head, concept in _COMPOUND_STARTS.items():
                rest = joined[len(head):]
                if joined.startswith(head) and len(rest) >= 3:
                    matches.append(_NameMatch(concept, joined, ("German compound",), others | {rest}))
    return matches


def _person_name_verdict(match: _NameMatch) -> str | None:
    """None when the name is a person's; else why it is the name of a thing."""
    if match.qualifiers & _PERSON_WORDS:
        return None
    things = sorted(match.qualifiers & _THING_WORDS)
    if things:
        return f"the name of a thing ('{things[0]}'), not of a person"
    return None


def _excuse(match: _NameMatch) -> str | None:
    """None when the match makes the column personal; else why the column is about the channel instead."""
    if match.concept == "person name":
        return _person_name_verdict(match)
    for category in _EXCUSED_BY[match.concept]:
        if match.qualifiers & _EXCUSES[category]:
            return _EXCUSE_WHY[category]
    return None


@dataclass(frozen=True)
class _NameVerdict:
    personal: bool
    why: str
    ambiguous: bool = False  # a bare `contact`: the values decide


def _name_verdict(column: str) -> _NameVerdict | None:
    """What a column's name alone says: personal, excused (about the channel), or nothing (None)."""
    words = name_words(column)
    excused = None
    for match in _name_matches(words):
        if match.concept == "contact" and match.qualifiers:
            continue  # only a column named by the word alone is a contact person
        reason = _excuse(match)
        where = f"'{match.word}' ({'/'.join(match.languages)})"
        if reason is None:
            if match.concept == "contact":
                return _NameVerdict(True, f"name is just {where}: a contact person", ambiguous=True)
            return _NameVerdict(True, f"name matches {match.concept}: {where}")
        excused = excused or _NameVerdict(False, f"{reason} (name mentions {match.concept}: {where})")
    return excused


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

# Starts only where a run of address characters starts, so a long token costs linear time.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
)
# A run of digits with separators, not glued to a word, a sign or a code (`A-0123-4567`).
_PHONE_RUN = re.compile(r"(?<![\w+\-/.,])(?:\+|\(\+?)?\d(?:[ \u00a0\-/.()]{1,3}\d|\d)*\)?")
_DATE = re.compile(
    r"\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}|(?:19|20)\d{2}[./-]\d{1,2}[./-]\d{1,2}|(?<!\d)\d{1,2}/(?:19|20)\d{2}(?!\d)"
)
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,34}")
_PROFILE = re.compile(
    r"(?:linkedin\.com/(?:in|pub)/[\w%.-]+"
    r"|xing\.com/profiles?/[\w%.-]+"
    r"|(?:(?<=//)|(?<=www\.)|(?<=mobile\.)|(?<![\w.-]))(?:twitter|x)\.com/(?!(?:intent|share|home|search|hashtag|i)\b)\w{1,15}"
    r"|(?:facebook|fb)\.com/(?!(?:sharer|share|dialog|tr|plugins|events|groups|pages|ads|business)\b)[\w.]+"
    r"|instagram\.com/(?!(?:p|explore|reel)\b)[\w.]+)",
    re.IGNORECASE,
)
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")

# ISO 13616 IBAN lengths by country (the registry), so trailing text never spoils the check.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_is_valid(iban: str) -> bool:
    """Whether `iban` (spaces allowed) has its country's length and valid ISO 13616 mod-97 check digits."""
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _has_iban(text: str) -> bool:
    for found in _IBAN_START.finditer(text.upper()):
        compact = found.group().replace(" ", "")
        length = _IBAN_LENGTHS.get(compact[:2])
        if length and len(compact) >= length and iban_is_valid(compact[:length]):
            return True
    return False


# Spanish national numbers have no trunk `0`: nine digits from 6 to 9, grouped 3-2-2-2, or 3-3-3 for
# mobiles (6, 7). A 3-3-3 landline (8, 9) reads like an amount with space thousands, so it needs `+34`.
_SPANISH_NATIONAL = re.compile(r"[6-9]\d{2}([ \u00a0.-])\d{2}\1\d{2}\1\d{2}|[67]\d{2}([ \u00a0.-])\d{3}\2\d{3}")


def _has_phone(text: str) -> bool:
    for found in _PHONE_RUN.finditer(text):
        run = found.group()
        if _SPANISH_NATIONAL.fullmatch(run):
            return True
        digits = re.sub(r"\D", "", run)
        if not 8 <= len(digits) <= 15 or _DATE.search(run):
            continue
        start = run.lstrip("(")
        if start.startswith("+"):
            # International numbers may be written without separators (E.164): the `+` is shape enough.
            if digits[0] != "0":
                return True
            continue
        separated = bool(re.search(r"\D", run.strip("()")))
        # A national (`0...`) or `00` number needs separators: a bare leading-zero digit run is an id;
        # `000...` is an id, and one decimal point makes a number, not a phone.
        if start.startswith("0") and not digits.startswith("000") and separated and not re.fullmatch(r"\d+\.\d+", run):
            return True
    return False


def _has_ip(text: str) -> bool:
    if _IPV4.search(text):
        return True
    for found in _IPV6_CANDIDATE.finditer(text):
        candidate = found.group()
        if sum(c.isalnum() for c in candidate) >= 4:
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            return True
    return False


# What a cell may hold, and how the count is reported.
_VALUE_DETECTORS = (
    ("e-mail addresses", lambda text: _EMAIL.search(text) is not None),
    ("phone numbers", _has_phone),
    ("IBANs", _has_iban),
    ("personal profile URLs", lambda text: _PROFILE.search(text) is not None),
    ("IP addresses", _has_ip),
)


def personal_value_kinds(text: str) -> list[str]:
    """Which kinds of personal value a single cell's text holds (e.g. ['e-mail addresses']); [] if none."""
    return [kind for kind, detected in _VALUE_DETECTORS if detected(text)]


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.api.types.is_object_dtype(dtype.categories.dtype) or pd.api.types.is_string_dtype(dtype.categories.dtype)
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _sample_text(series: pd.Series, sample_rows: int, seed: int) -> list[str]:
    """Up to `sample_rows` non-empty cells as text, drawn in a seeded random order."""
    present = series[series.notna()]
    order = np.random.default_rng(seed).permutation(len(present))
    chunk = max(2 * sample_rows, 1)
    sample: list[str] = []
    for lo in range(0, len(order), chunk):
        cells = (str(v).strip() for v in present.iloc[order[lo:lo + chunk]])
        sample.extend(c for c in cells if c)
        if len(sample) >= sample_rows:
            break
    return sample[:sample_rows]


# Free text: mostly distinct, long, made of words. Fewer values than this say too little.
_FREE_TEXT_MIN_VALUES = 20
_FREE_TEXT_DISTINCT_SHARE = 0.5
_FREE_TEXT_MEAN_LENGTH = 20
# A bare `contact` column of at most this many categories, each repeated, is a channel, not a person.
_CATEGORY_MAX_LEVELS = 20
_CATEGORY_MIN_REPEATS = 5


def _is_free_text(sample: Sequence[str]) -> bool:
    if len(sample) < _FREE_TEXT_MIN_VALUES:
        return False
    distinct = len(set(sample)) / len(sample)
    mean_length = sum(map(len, sample)) / len(sample)
    worded = sum(" " in s for s in sample) / len(sample)
    return distinct > _FREE_TEXT_DISTINCT_SHARE and mean_length > _FREE_TEXT_MEAN_LENGTH and worded > 0.5


def _few_categories(sample: Sequence[str]) -> bool:
    levels = len(set(sample))
    return 0 < levels <= _CATEGORY_MAX_LEVELS and len(sample) >= _CATEGORY_MIN_REPEATS * levels


def _value_why(sample: Sequence[str]) -> str | None:
    """'3 of 500 sampled values look like e-mail addresses; 1 of 500 like phone numbers', or None."""
    counts: dict[str, int] = {}
    for text in sample:
        for kind in personal_value_kinds(text):
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    n = len(sample)
    parts = [f"{count} of {n} sampled values {'look like' if i == 0 else 'like'} {kind}"
             for i, (kind, count) in enumerate(counts.items())]
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


def _check_lists(declared: Iterable[str], not_personal: Iterable[str]) -> tuple[set[str], set[str]]:
    declared, not_personal = {str(c) for c in declared}, {str(c) for c in not_personal}
    both = sorted(declared & not_personal)
    if both:
        raise ConfigError(
            f"column(s) {both} are listed both in data.personal_columns and in data.not_personal; "
            "Fix: keep each column in one of the two lists"
        )
    return declared, not_personal


def personal_decisions(
    frame: pd.DataFrame,
    declared: Iterable[str] = (),
    not_personal: Iterable[str] = (),
    sample_rows: int = 1000,
    seed: int = 0,
) -> list[PersonalDecision]:
    """One decision per column of `frame`, in column order: is it personal, by which rule, and why.

    Parameters
    ----------
    frame : the data as read, before anything else sees it.
    declared : columns the config calls personal (`data.personal_columns`); always personal.
    not_personal : columns the config calls not personal (`data.not_personal`); never personal,
        overruling what their names or values look like.
    sample_rows : at most this many non-empty cells of each text column are searched.
    seed : the sample's seed, so the same frame always gets the same decisions.

    Raises ConfigError when a column is both declared and not personal. The `why` of a decision
    names rules, counts and column-name words, never a cell's content.
    """
    declared, not_personal = _check_lists(declared, not_personal)
    decisions = []
    for position, column in enumerate(frame.columns):
        name = str(column)
        series = frame.iloc[:, position]
        text = _is_text(series)
        sample = _sample_text(series, sample_rows, seed) if text else []
        decisions.append(_decide(name, sample, _is_free_text(sample), declared, not_personal, text=text))
    return decisions


def _decide(name: str, sample: Sequence[str], free_text: bool, declared: set[str], not_personal: set[str],
            *, text: bool) -> PersonalDecision:
    if name in declared:
        return PersonalDecision(name, True, "declared", "declared in data.personal_columns", free_text)
    verdict = _name_verdict(name)
    value_why = _value_why(sample)
    if name in not_personal:
        found = [w for w in ((verdict.why if verdict and verdict.personal else None), value_why) if w]
        was = f" (it looked personal: {'; '.join(found)})" if found else ""
        return PersonalDecision(name, False, "not_personal", f"overruled by data.not_personal{was}", free_text)
    if verdict is not None and verdict.personal:
        if verdict.ambiguous and value_why is None and _few_categories(sample):
            why = (f"{verdict.why}, but its values are {len(set(sample))} repeated categories "
                   "(a channel such as a kind of phone), not people")
            return PersonalDecision(name, False, "kept", why, free_text)
        if verdict.ambiguous and not text:
            return PersonalDecision(name, False, "kept", f"{verdict.why}, but it holds numbers, not people", free_text)
        return PersonalDecision(name, True, "name", verdict.why, free_text)
    if value_why is not None:
        return PersonalDecision(name, True, "value", value_why, free_text)
    if free_text:
        why = (f"free text: {len(set(sample))} distinct of {len(sample)} sampled values, "
               f"{sum(map(len, sample)) / len(sample):.0f} characters on average; not learned as a category "
               "unless declared")
        return PersonalDecision(name, False, "free_text", why, True)
    if verdict is not None:
        return PersonalDecision(name, False, "kept", verdict.why, free_text)
    scanned = f"{len(sample)} sampled values hold none" if text else "not text, so values are not searched"
    return PersonalDecision(name, False, "kept", f"{_NOTHING_FOUND}; {scanned}", free_text)


_NOTHING_FOUND = "no personal name"


def find_personal_columns(
    frame: pd.DataFrame,
    declared: Iterable[str] = (),
    not_personal: Iterable[str] = (),
    sample_rows: int = 1000,
    seed: int = 0,
) -> list[str]:
    """The columns of `frame` to drop as personal, by declaration, name or value (see `personal_decisions`).

    Each column found personal, and each one overruled or excused by its name (an opt-out flag, a
    count), is logged with its reason at INFO: column names and rule words only, never a value.
    """
    found = []
    for decision in personal_decisions(frame, declared, not_personal, sample_rows=sample_rows, seed=seed):
        if decision.personal:
            found.append(decision.column)
            _log.info("column '%s' is personal and is dropped: %s", decision.column, decision.why)
        elif decision.kind != "kept" or not decision.why.startswith(_NOTHING_FOUND):
            # Kept against appearances (overruled, an opt-out flag, free text): say so, as for drops.
            _log.info("column '%s' is kept: %s", decision.column, decision.why)
    return found


def personal_columns(columns: Iterable[str], declared: Iterable[str] = (), not_personal: Iterable[str] = ()) -> list[str]:
    """The declared personal columns present, plus columns whose names alone look personal, in column order.

    For callers without the data; `find_personal_columns` also searches values. A column named just
    `contact` is kept here: only its values can tell a contact person from a channel category.
    """
    columns = [str(c) for c in columns]
    declared, not_personal = _check_lists(declared, not_personal)
    found = []
    for column in columns:
        verdict = _name_verdict(column)
        by_name = verdict is not None and verdict.personal and not verdict.ambiguous
        if column in declared or (by_name and column not in not_personal):
            found.append(column)
    return found
