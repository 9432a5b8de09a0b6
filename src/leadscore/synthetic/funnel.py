"""A seeded synthetic B2B lead funnel whose ground truth is known.

Real CRM exports never say *why* a lead converted. This module simulates a funnel from an explicit
hidden process, so that scoring models, explanations and dimension scores can be checked against
the truth: a good model must rank leads by the true conversion probability, an explanation must
name seniority and company size before the UTM campaign, an engagement score must follow the true
decayed engagement.

The hidden process
------------------
Leads are created uniformly over ``[start, start + days)``, lead ids in creation order. Every lead
lives for ``LIFE_WEEKS`` (26) weeks after its creation, simulated in weekly steps.

1. **Profile.** Seniority, company size, industry, department, country, lead source and a UTM
   campaign are drawn independently (a "Student" department implies the "Intern" seniority). The
   profile's log-odds contribution is ``true_fit = sum of fit_effects[attribute][value]``;
   seniority and company size matter most, industry and department moderately, country and lead
   source a little, the UTM campaign not at all. About 4 % of company size, industry and
   department values are then hidden (missing at random); the hidden true value still acts.
2. **Latent state.** ``interest`` ~ Gamma, higher for better fit and for some lead sources, drives
   how much the lead engages. ``in_market`` (more likely with good fit) marks a buying window
   that peaks at ``decision_at``. A per-lead unobserved log-odds shift ~ N(0, noise_scale) stands
   for everything a CRM does not record.
3. **Activities.** Weekly counts per activity kind are Poisson. Engagement kinds (page views,
   email opens, downloads, webinars) have rates proportional to interest that fade as the lead
   ages; email clicks are a binomial share of the opens. Intent kinds (pricing page views, demo
   and quote requests, trial sign-ups) cluster in the weeks before the decision of in-market
   leads and are rare otherwise. Careers-page views come mostly from interns and juniors and
   lower intent. Event times are uniform within their week.
4. **Conversion.** From the realised events two decayed states are kept (an event's weight halves
   every half-life): engagement ``E = sum engagement_weights[key] * 0.5 ** (age / engagement
   half-life)`` and intent ``S`` likewise with ``intent_weights``. At the start of week w
   (events strictly before it) the weekly hazard is::

       p_w = sigmoid(intercept + true_fit + engagement_coef * log1p(E_w)
                     + intent_coef * S_w + noise)

   The first week whose Bernoulli(p_w) draw succeeds is the conversion week; the conversion time
   is uniform within it and events after it are dropped.
5. **Stages.** ``MQL`` at the first event after which E reaches ``mql_engagement_threshold``;
   ``SAL`` a few days later when sales accepts it (likelier with good fit); ``SQL`` at the first
   event after which S reaches ``sql_intent_threshold`` (never before MQL or SAL); ``won`` at the
   conversion; ``lost`` at the end of the life of every lead that did not convert (closed: no
   response). Stages a lead never reached are absent, so a lead can go straight to ``won``.
   With ``sal_rejections=True`` an MQL that sales decides not to accept gets a ``SAL_rejected``
   outcome at the time of that decision (the same delay after MQL as an acceptance, and only when
   it falls before the conversion or the end of the life). The decision is drawn either way, so the
   option only adds these rows: every other row, and every other table, stays the same.
   With ``recycling=True`` (which writes rejections too) a rejected lead comes back: its second
   episode starts with a new ``MQL`` at its first event at least ``recycle_after_days`` (30) after the
   rejection at which E is at the MQL threshold again (before the conversion or the end of the life),
   and sales decides again, with the same acceptance probability, drawn from a random stream of its
   own (so again nothing else changes). A lead recycles at most once; the rows of its second episode
   follow its other rows.

Accounts
--------
With ``accounts=True`` the leads are contacts of companies that buy together (B2B). Everything the
accounts add is drawn from a random stream of its own (child ``(b, 2)`` of block b's seed), so the
draws of steps 1-5 are made as without accounts and then some are replaced:

- **Grouping.** Within each block of 1,000 leads, consecutive leads form accounts of
  ``min(Geometric(1/3), 8)`` contacts (1 to 8, mean about 3; the block's last account is cut at the
  block's end). Account ids are ``A`` and a zero-padded number, in lead order over the whole funnel.
- **Firmographics.** Each account draws company size, industry and country with the same
  probabilities as a lead, an email domain, and a head count (``employees``, log-uniform within its
  company-size band, ``5000+`` up to 100,000). Its contacts take its company size, industry,
  country and domain before ``true_fit`` is computed, so the truth holds the shared values. The
  contacts' own missing-at-random hiding of company size and industry still applies on the leads.
- **Buying-group role** (``buying_role``), from the true seniority and department: ``decision_maker``
  for a Director, VP or C-level lead (any department); otherwise ``finance`` for the Finance
  department, ``technical`` for IT and Engineering, and ``user`` for everyone else (Marketing,
  Sales, Operations, HR, Student). The role is always filled, also where the department is hidden.
- **Account intent.** An account is in market with probability ``sigmoid(-1.4 + 0.8 * mean true_fit
  of its contacts)``; its ``decision_at`` is uniform over the 26 weeks after its first contact's
  creation. Every contact shares the account's ``in_market``; a contact's own buying window peaks
  at the account's decision plus N(0, 0.5 week) (steps 3-5 then work from it unchanged; its
  ``truth_leads`` row holds the contact's own window).
- **Buying group.** ``G_w`` is the number of distinct roles among the contacts of the lead's account
  (the lead included) with a buying-group event (product or pricing page view, content download,
  webinar, demo or quote request, trial sign-up) in the two weeks before the start of the lead's
  week w (events strictly before it; the whole simulated paths, as for E and S). The weekly hazard
  of step 4 gains ``buying_group_coef * max(G_w - 1, 0)`` (``buying_group_coef`` = 0.5): every further
  role working on the purchase makes each contact likelier to convert. A contact's events dropped
  after its conversion come after its account's first conversion, so they never change when an
  account first converts.

Because every lead is simulated to the end of its life, the event log reaches up to 26 weeks
past ``start + days``.

Ground truth
------------
``truth_leads`` (one row per lead):

- ``true_fit``: the profile's log-odds contribution (without the unobserved noise).
- ``interest``: the latent engagement propensity (Gamma distributed, around 1).
- ``in_market``: whether the lead has a buying window.
- ``decision_at``: the centre of the buying window (NaT when not in market).
- ``converted_at``: the conversion time (NaT if the lead never converted).
- ``p_convert_life``: ``1 - prod_w(1 - p_w)`` over all weeks of the life for the simulated
  activity path (including the events that a conversion then drops): the probability of
  converting within the life that an oracle knowing the path would give.

``truth_accounts`` (with ``accounts``; one row per account, in id order):

- ``account_id``; ``in_market`` and ``decision_at`` (NaT when not in market): the account's buying
  window, before its contacts' jitter; ``contacts``: its number of leads.
- ``converted_at``: the first conversion of any of its leads (NaT if none).
- ``p_convert_life``: ``1 - prod over its leads of (1 - lead p_convert_life)``, the probability that
  some contact converts within its life given the simulated paths.

The observable ``accounts`` table has ``account_id``, ``company_size``, ``industry``, ``country``
(never missing there) and ``employees``, which the leads do not carry; the leads gain
``account_id`` and ``buying_role`` and keep their own company columns (as CRMs copy them).

The true probability that sales accepts an MQL is ``sigmoid(sal_logit.intercept + sal_logit.slope *
true_fit)`` (``true_sal_probability``).

``truth`` (JSON-serialisable): ``generation`` (the arguments), ``intercept``, ``fit_effects``
({attribute: {value: effect}}, ``utm_campaign`` all 0),
``noise_scale``, ``engagement_weights`` and ``engagement_half_life_days``, ``intent_weights`` and
``intent_half_life_days`` (activity keys are the activity type, or ``page_view:<page>`` for page
views), ``engagement_coef`` and ``intent_coef``, ``life_weeks``, ``mql_engagement_threshold``,
``sql_intent_threshold``, ``hazard`` (the formula above), ``sal_logit``, ``driver_effects`` and ``realised``.
With ``accounts`` also ``accounts``: the grouping (``contacts``), ``firmographics``,
``employees_by_company_size``, ``in_market_logit``, ``decision_jitter_weeks``, ``roles`` and
``role_mapping``, ``buying_group_coef``, ``buying_group_window_weeks``, ``buying_group_kinds``, the
formulas ``buying_group`` and ``hazard``, and the realised ``n_accounts``, ``n_converted`` and
``conversion_rate`` of accounts.

``driver_effects`` ranks the observable drivers, largest first: for each profile column and each
activity key, the standard deviation of its direct contribution to the weekly hazard log-odds over
all lead-weeks at risk. The engagement term is split between activity keys by their share of E.
The UTM campaign is exactly 0. With accounts, ``buying_group`` (the buying-group term) is a driver
too. Profile columns also act through interest and the buying window, so their total effect is
larger than this direct one. ``realised`` gives the conversion rate and the number of events of the
generated data, and the number of MQLs sales decided on before the lead left the funnel: ``n_sal_accepted`` and ``n_sal_rejected`` (counted whether or not rejections are written;
decisions of second episodes included with ``recycling``), and ``n_recycled``, the second episodes.

Reproducibility
---------------
Leads are simulated in fixed blocks of ``_BLOCK`` (1,000) leads; block b draws from
``SeedSequence(seed).spawn(...)[b]`` (a second episode's decision from its child ``(b, 1)``, accounts
from ``(b, 2)``), so the data depend only on ``(n_leads, seed, start, days, sal_rejections, recycling, accounts)`` and never on how
many blocks are generated or written at a time. Accounts never span two blocks, for the same reason.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "LIFE_WEEKS", "SAL_REJECTED", "SyntheticFunnel", "generate_funnel", "generate_to_dir", "true_components",
    "true_sal_probability", "write_funnel",
]

LIFE_WEEKS = 26
SAL_REJECTED = "SAL_rejected"  # the outcome stage of an MQL sales decided not to accept
_TABLE_FILES = {
    "leads": "leads",
    "activities": "activities",
    "outcomes": "outcomes",
    "truth_leads": "ground_truth_leads",
}
_ACCOUNT_TABLE_FILES = {  # written only with accounts=True
    "accounts": "accounts",
    "truth_accounts": "ground_truth_accounts",
}
_FILE_STEMS = _TABLE_FILES | _ACCOUNT_TABLE_FILES
_TRUTH_FILE = "ground_truth"
_FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class SyntheticFunnel:
    """The observable tables of a simulated funnel and the truth that produced them."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    outcomes: pd.DataFrame
    truth_leads: pd.DataFrame
    truth: dict
    accounts: pd.DataFrame | None = None  # with accounts=True: one row per account
    truth_accounts: pd.DataFrame | None = None


def generate_funnel(n_leads: int, seed: int, start: str = "2025-01-01", days: int = 730, *,
                    sal_rejections: bool = False, recycling: bool = False, accounts: bool = False) -> SyntheticFunnel:
    """Simulate `n_leads` leads created uniformly over `days` days from `start` (UTC).

    The same arguments always give identical frames. Everything is held in memory; for millions
    of leads use `generate_to_dir`, which writes the same data chunk by chunk. `sal_rejections` adds
    a ``SAL_rejected`` outcome for each MQL sales decided not to accept (nothing else changes);
    `recycling` also brings rejected leads back for a second episode; `accounts` groups the leads
    into accounts (companies) that buy together and adds the ``accounts`` and ``truth_accounts``
    tables (see the module doc).
    """
    stream = _FunnelStream(n_leads, seed, start, days, sal_rejections, recycling, accounts)
    pieces: dict[str, list[pd.DataFrame]] = {name: [] for name in stream.tables}
    for chunk in stream.chunks(_DEFAULT_CHUNK):
        for name, frame in chunk.items():
            pieces[name].append(frame)
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in pieces.items()}
    return SyntheticFunnel(**tables, truth=stream.truth())


def write_funnel(funnel: SyntheticFunnel, out_dir: str | Path, fmt: str = "parquet") -> dict[str, Path]:
    """Write the tables and ``ground_truth.json`` into `out_dir`; returns name -> path.

    Names are the file stems (``leads``, ``activities``, ``outcomes``, ``ground_truth_leads``,
    ``ground_truth``, and for a funnel with accounts ``accounts`` and ``ground_truth_accounts``).
    Each file is written to a temporary file beside it and renamed into place, so a reader never
    sees a half-written file.
    """
    names = [*_TABLE_FILES, *(name for name in _ACCOUNT_TABLE_FILES if getattr(funnel, name) is not None)]
    writers = _open_writers(Path(out_dir), fmt, names)
    try:
        for name, writer in writers.items():
            writer.write(getattr(funnel, name))
        return _commit(writers, funnel.truth, Path(out_dir))
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise


def generate_to_dir(
    n_leads: int,
    seed: int,
    out_dir: str | Path,
    fmt: str = "parquet",
    start: str = "2025-01-01",
    days: int = 730,
    chunk_size: int = 100_000,
    *,
    sal_rejections: bool = False,
    recycling: bool = False,
    accounts: bool = False,
) -> dict[str, Path]:
    """Simulate and write a funnel chunk by chunk, keeping memory bounded for millions of leads.

    The files hold the same data as ``write_funnel(generate_funnel(n_leads, seed, start, days))``.
    `chunk_size` leads (rounded up to whole blocks of 1,000) are simulated and appended at a
    time. Activities are written in global time order: events that a later lead could still
    precede wait in a buffer, which holds about the events of the leads created in the last
    ``LIFE_WEEKS`` weeks. `sal_rejections`, `recycling` and `accounts` as for `generate_funnel`.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    out = Path(out_dir)
    stream = _FunnelStream(n_leads, seed, start, days, sal_rejections, recycling, accounts)
    writers = _open_writers(out, fmt, stream.tables)
    try:
        for chunk in stream.chunks(chunk_size):
            for name, frame in chunk.items():
                writers[name].write(frame)
        return _commit(writers, stream.truth(), out)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise


def true_components(
    activities: pd.DataFrame, truth: dict, as_of: pd.Timestamp, lead_ids=None
) -> pd.DataFrame:
    """The true decayed engagement E and intent S of each lead at `as_of`.

    Only events strictly before `as_of` count, each weighted by ``truth``'s engagement or intent
    weight for its key and halved every half-life of age. Returns columns ``lead_id``,
    ``true_engagement`` and ``true_intent``: one row per id in `lead_ids` (unique; in that order,
    0 for leads without events) or, when it is None, per lead id in `activities` (sorted).
    """
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    timestamps = pd.to_datetime(activities["timestamp"], utc=True)
    before = (timestamps < as_of).to_numpy()
    # Object dtype keeps a missing page missing under every pandas string setting.
    activity_type = activities["activity_type"][before].astype(object)
    page = activities["page"][before].astype(object)
    has_page = (activity_type == "page_view") & page.notna()
    key = activity_type.where(~has_page, "page_view:" + page.where(has_page, ""))
    age_days = ((as_of - timestamps[before]).dt.total_seconds() / 86_400.0).to_numpy()

    all_ids = activities["lead_id"].astype(object)
    ids = pd.Index(sorted(pd.unique(all_ids)) if lead_ids is None else list(lead_ids), dtype=object)
    position = ids.get_indexer(all_ids[before])
    known = position >= 0

    def decayed(weights: dict, half_life_days: float) -> np.ndarray:
        weight = key.map(weights).fillna(0.0).to_numpy(dtype=float)
        contribution = weight * np.exp2(-age_days / half_life_days)
        return np.bincount(position[known], weights=contribution[known], minlength=len(ids))

    return pd.DataFrame(
        {
            "lead_id": ids.to_numpy(),
            "true_engagement": decayed(truth["engagement_weights"], truth["engagement_half_life_days"]),
            "true_intent": decayed(truth["intent_weights"], truth["intent_half_life_days"]),
        }
    )


def true_sal_probability(truth_leads: pd.DataFrame, truth: dict) -> pd.Series:
    """Each lead's true probability that sales accepts it once it is an MQL, indexed like `truth_leads`.

    The generator draws the decision from this probability for every lead; it shows as ``SAL`` (or as
    ``SAL_rejected`` with ``sal_rejections``) for the leads that reach MQL and stay long enough."""
    logit = truth["sal_logit"]
    return pd.Series(_sigmoid(logit["intercept"] + logit["slope"] * truth_leads["true_fit"].to_numpy(dtype=float)),
                     index=truth_leads.index, name="p_sal_accept")


# --------------------------------------------------------------------------------------------
# The hidden process: parameters
# --------------------------------------------------------------------------------------------

_BLOCK = 1_000  # leads per random-number block; changing it changes every generated data set
_DEFAULT_CHUNK = 100_000
_ACTIVITY_PIECE = 2_000_000  # most activity rows turned into one frame at a time
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_LIFE_S = LIFE_WEEKS * _WEEK_S
_US = 1_000_000  # timestamps are stored in microseconds, the unit pandas and Parquet share
_MISSING_RATE = 0.04


@dataclass(frozen=True)
class _Attribute:
    """A categorical profile attribute: its values, how often each occurs and its fit effect."""

    values: tuple[str, ...]
    probs: tuple[float, ...]
    effects: tuple[float, ...]


_ATTRIBUTES = {
    "seniority": _Attribute(
        ("Intern", "Individual Contributor", "Manager", "Director", "VP", "C-level"),
        (0.06, 0.38, 0.25, 0.15, 0.10, 0.06),
        (-1.5, -0.6, 0.0, 0.5, 0.9, 0.8),
    ),
    "company_size": _Attribute(
        ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"),
        (0.15, 0.20, 0.22, 0.20, 0.13, 0.10),
        (-1.2, -0.5, 0.0, 0.4, 0.8, 0.6),
    ),
    "industry": _Attribute(
        ("Software", "Financial Services", "Healthcare", "Professional Services", "Manufacturing",
         "Retail", "Government", "Education"),
        (0.22, 0.14, 0.12, 0.10, 0.12, 0.12, 0.08, 0.10),
        (0.4, 0.3, 0.15, 0.1, 0.0, -0.1, -0.3, -0.35),
    ),
    "department": _Attribute(
        ("Marketing", "Sales", "IT", "Engineering", "Operations", "Finance", "HR", "Student"),
        (0.24, 0.15, 0.14, 0.12, 0.10, 0.08, 0.07, 0.10),
        (0.45, 0.25, 0.1, 0.0, -0.05, -0.1, -0.3, -0.9),
    ),
    "country": _Attribute(
        ("US", "GB", "DE", "FR", "CA", "AU", "IN", "BR"),
        (0.40, 0.12, 0.12, 0.08, 0.08, 0.06, 0.08, 0.06),
        (0.1, 0.05, 0.0, -0.05, 0.05, 0.0, -0.15, -0.1),
    ),
    "lead_source": _Attribute(
        ("Organic Search", "Paid Search", "Webinar", "Referral", "Event", "Content Syndication", "Direct"),
        (0.24, 0.18, 0.12, 0.08, 0.10, 0.18, 0.10),
        (0.0, -0.1, 0.15, 0.3, 0.1, -0.25, 0.05),
    ),
}
_MASKED = ("company_size", "industry", "department")  # profile columns with values missing at random
_STUDENT = _ATTRIBUTES["department"].values.index("Student")
_INTERN = _ATTRIBUTES["seniority"].values.index("Intern")


def _by_value(attribute: str, values: dict) -> np.ndarray:
    """A per-value parameter as an array indexed by the attribute's value code."""
    return np.array([values[value] for value in _ATTRIBUTES[attribute].values])


# Some sources bring leads who already know the product: they engage more.
_SOURCE_INTEREST = _by_value("lead_source", {
    "Organic Search": 1.0, "Paid Search": 0.85, "Webinar": 1.3, "Referral": 1.4, "Event": 1.3,
    "Content Syndication": 0.7, "Direct": 1.1,
})
_CAMPAIGNS = tuple(
    f"{theme}_{year}q{quarter}"
    for theme in ("brand", "retarget", "abm", "nurture", "launch", "partner")
    for year in (2025, 2026)
    for quarter in (1, 2, 3, 4)
)

# Activity kinds: an activity type, or a page view of one page.
_KINDS = (
    "page_view:home", "page_view:blog", "page_view:product", "page_view:docs", "page_view:pricing",
    "page_view:careers", "email_open", "email_click", "content_download", "webinar_attended",
    "demo_request", "quote_request", "trial_signup",
)
_K = len(_KINDS)
_KIND_INDEX = {kind: i for i, kind in enumerate(_KINDS)}
_CHANNEL = {
    "page_view": "web", "email_open": "email", "email_click": "email", "content_download": "web",
    "webinar_attended": "event", "demo_request": "web", "quote_request": "web", "trial_signup": "product",
}
_KIND_TYPE = tuple(kind.split(":")[0] for kind in _KINDS)
_KIND_PAGE = tuple(kind.split(":")[1] if ":" in kind else None for kind in _KINDS)
_KIND_CHANNEL = tuple(_CHANNEL[t] for t in _KIND_TYPE)


def _per_kind(values: dict[str, float]) -> np.ndarray:
    out = np.zeros(_K)
    for kind, value in values.items():
        out[_KIND_INDEX[kind]] = value
    return out


# Weekly rates at interest 1 in the lead's first week; they fade with age (time constant below).
_ENGAGEMENT_RATE = _per_kind({
    "page_view:home": 0.5, "page_view:blog": 0.7, "page_view:product": 0.35, "page_view:docs": 0.2,
    "page_view:pricing": 0.03, "email_open": 1.0, "content_download": 0.12, "webinar_attended": 0.04,
})
_INTEREST_FADE_WEEKS = 8.0
# Extra weekly rates at the peak of an in-market lead's buying window.
_WINDOW_RATE = _per_kind({
    "page_view:home": 0.3, "page_view:product": 0.8, "page_view:docs": 0.6, "page_view:pricing": 1.2,
    "content_download": 0.2, "webinar_attended": 0.1, "demo_request": 0.35, "quote_request": 0.2,
    "trial_signup": 0.25,
})
_WINDOW_LEAD_WEEKS = 1.5  # intent builds up over the weeks before the decision ...
_WINDOW_TAIL_WEEKS = 0.5  # ... and stops soon after it
# A few hand-raisers outside any buying window.
_BACKGROUND_RATE = _per_kind({"page_view:pricing": 0.01, "demo_request": 0.002, "quote_request": 0.001,
                              "trial_signup": 0.002})
# Careers-page visits per week: job seekers, mostly interns and juniors.
_CAREERS_RATE = _by_value("seniority", {
    "Intern": 0.30, "Individual Contributor": 0.08, "Manager": 0.02, "Director": 0.02, "VP": 0.02, "C-level": 0.02,
})
_CLICK_SHARE = 0.25  # of email opens

_INTEREST_SHAPE = 1.5
_INTEREST_FIT_SLOPE = 0.35
_IN_MARKET_LOGIT = (-1.4, 0.8)  # intercept, slope on true_fit

_ENGAGEMENT_WEIGHTS = {
    "page_view:home": 1.0, "page_view:blog": 1.0, "page_view:product": 2.0, "page_view:docs": 1.5,
    "page_view:pricing": 3.0, "page_view:careers": 0.0, "email_open": 0.5, "email_click": 1.5,
    "content_download": 4.0, "webinar_attended": 5.0, "demo_request": 8.0, "quote_request": 8.0,
    "trial_signup": 6.0,
}
_INTENT_WEIGHTS = {
    "page_view:pricing": 1.0, "page_view:careers": -1.5, "demo_request": 3.0, "quote_request": 3.0,
    "trial_signup": 2.0,
}
_ENGAGEMENT_HALF_LIFE_DAYS = 30.0
_INTENT_HALF_LIFE_DAYS = 14.0
_INTERCEPT = -8.0
_ENGAGEMENT_COEF = 0.55
_INTENT_COEF = 0.8
_NOISE_SCALE = 0.6
_MQL_THRESHOLD = 15.0
_SQL_THRESHOLD = 3.0
_SAL_LOGIT = (0.5, 1.5)  # intercept, slope on true_fit: sales accepts leads that fit
_SAL_DELAY_DAYS = (0.25, 2.0)  # minimum, mean of the exponential rest
_RECYCLE_AFTER_DAYS = 30  # a rejected lead can be an MQL again this long after the rejection

# Accounts (accounts=True) ------------------------------------------------------------------------
_FIRMOGRAPHICS = ("company_size", "industry", "country")  # shared by every contact of an account
_ACCOUNT_SIZE_P = 1 / 3  # contacts per account: geometric on 1, 2, ... (mean 3) ...
_MAX_CONTACTS = 8  # ... capped here
_DECISION_JITTER_WEEKS = 0.5  # sd of a contact's decision around its account's
_BUYING_GROUP_COEF = 0.5  # hazard log-odds per active buying-group role beyond the first
_BUYING_GROUP_WINDOW_WEEKS = 2  # a role is active with a buying-group event in this many weeks before a week
# Deliberate engagement and intent: the events that show a contact working on the purchase (not the
# passive ones such as email opens and blog or home page views, nor careers-page visits).
_BUYING_GROUP_KINDS = ("page_view:product", "page_view:pricing", "content_download", "webinar_attended",
                       "demo_request", "quote_request", "trial_signup")
# Head count by company-size band (log-uniform within the band); only the accounts table holds it.
_EMPLOYEES = {"1-10": (1, 10), "11-50": (11, 50), "51-200": (51, 200), "201-1000": (201, 1_000),
              "1001-5000": (1_001, 5_000), "5000+": (5_001, 100_000)}
_ROLES = ("decision_maker", "finance", "technical", "user")
_DECISION_MAKERS = ("Director", "VP", "C-level")  # seniority: decides, whatever the department
_ROLE_BY_DEPARTMENT = {"Finance": "finance", "IT": "technical", "Engineering": "technical"}  # else user

_W_ENGAGEMENT = _per_kind(_ENGAGEMENT_WEIGHTS)
_W_INTENT = _per_kind(_INTENT_WEIGHTS)
_GROUP_KIND = _per_kind(dict.fromkeys(_BUYING_GROUP_KINDS, 1.0)) > 0
_EMPLOYEE_BOUNDS = np.array([_EMPLOYEES[size] for size in _ATTRIBUTES["company_size"].values], dtype=float)


def _role_codes() -> np.ndarray:
    """Buying-group role code by (seniority code, department code): seniority first, then department."""
    seniority, department = _ATTRIBUTES["seniority"].values, _ATTRIBUTES["department"].values
    return np.array([[_ROLES.index("decision_maker") if level in _DECISION_MAKERS
                      else _ROLES.index(_ROLE_BY_DEPARTMENT.get(unit, "user")) for unit in department]
                     for level in seniority])


_ROLE_OF = _role_codes()
_STAGES = ("MQL", "SAL", SAL_REJECTED, "SQL", "won", "lost", "MQL", "SAL", SAL_REJECTED)  # then a second episode
_DRIVERS = (*_ATTRIBUTES, "utm_campaign", *_KINDS)

_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Steven", "Emily",
    "Paul", "Michelle", "Andrew", "Amanda", "Joshua", "Melissa", "Kenji", "Priya", "Lukas", "Sophie",
    "Mateo", "Chloe", "Arjun", "Emma", "Oliver", "Ana", "Noah", "Fatima", "Liam", "Olivia",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Patel", "Nguyen", "Mueller", "Schmidt",
    "Dubois", "Rossi", "Tanaka", "Kumar", "Silva", "Santos", "Kowalski", "Novak", "Murphy", "Kelly",
)
_DOMAINS = tuple(
    f"{stem}{suffix}{tld}"
    for stem in ("acme", "blue", "bright", "cedar", "delta", "ember", "granite", "harbor", "iron", "juniper",
                 "keystone", "lumen", "maple", "nimbus", "orbit", "pioneer", "quartz", "summit", "terra", "zenith")
    for suffix in ("labs", "works", "systems", "data", "group")
    for tld in (".com", ".io", ".net")
)
_DIAL_CODES = tuple(_by_value("country", {"US": "+1", "GB": "+44", "DE": "+49", "FR": "+33", "CA": "+1", "AU": "+61",
                                           "IN": "+91", "BR": "+55"}).tolist())


def _job_titles() -> tuple[str, ...]:
    """Job titles indexed by ``seniority * n_departments + department``."""
    departments = _ATTRIBUTES["department"].values
    individual = {"Marketing": "Marketing Specialist", "Sales": "Account Executive", "IT": "Systems Administrator",
                  "Engineering": "Software Engineer", "Operations": "Operations Analyst",
                  "Finance": "Financial Analyst", "HR": "HR Generalist"}
    chief = {"Marketing": "Chief Marketing Officer", "Sales": "Chief Revenue Officer",
             "IT": "Chief Information Officer", "Engineering": "Chief Technology Officer",
             "Operations": "Chief Operating Officer", "Finance": "Chief Financial Officer",
             "HR": "Chief People Officer"}
    titles = []
    for seniority in _ATTRIBUTES["seniority"].values:
        for department in departments:
            if department == "Student":
                titles.append("Student")
            else:
                titles.append({
                    "Intern": f"{department} Intern", "Individual Contributor": individual[department],
                    "Manager": f"{department} Manager", "Director": f"Director of {department}",
                    "VP": f"VP of {department}", "C-level": chief[department],
                }[seniority])
    return tuple(titles)


_JOB_TITLES = _job_titles()


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------

# A block's tally: per driver the sum and sum of squares of its contribution over at-risk
# lead-weeks, then the number of at-risk lead-weeks, of kept events and of conversions.
_D = len(_DRIVERS)
_TALLY_WEEKS, _TALLY_EVENTS, _TALLY_CONVERTED = 2 * _D, 2 * _D + 1, 2 * _D + 2
_TALLY_ACCEPTED, _TALLY_REJECTED = 2 * _D + 3, 2 * _D + 4  # MQLs sales decided on, by decision
_TALLY_RECYCLED = 2 * _D + 5
_TALLY_GROUP = 2 * _D + 6  # sum and sum of squares of the buying-group term (accounts only)
_TALLY_ACCOUNTS, _TALLY_ACCOUNTS_CONVERTED = 2 * _D + 8, 2 * _D + 9
_TALLY_SIZE = 2 * _D + 10


@dataclass
class _Block:
    """One block of simulated leads, as numbers; turned into frames per chunk."""

    leads: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    outcomes: dict[str, np.ndarray]
    event_key: np.ndarray  # sorted; event second after start * n_leads + lead index
    event_kind: np.ndarray
    tally: np.ndarray
    accounts: dict[str, np.ndarray] | None = None  # with accounts: the accounts table's columns ...
    truth_accounts: dict[str, np.ndarray] | None = None  # ... and the account truth, as numbers

    @property
    def n_accounts(self) -> int:
        return 0 if self.accounts is None else len(self.accounts["index"])


@dataclass(frozen=True)
class _Accounts:
    """How one block's leads form accounts, and what each account draws from its own random stream."""

    of_lead: np.ndarray  # each lead's account, counted from 0 within the block
    first: np.ndarray  # each account's first lead; an account's leads are consecutive
    codes: dict[str, np.ndarray]  # firmographic value codes per account
    domain: np.ndarray
    employees: np.ndarray
    market_draw: np.ndarray  # uniform: in market when below the account's probability
    decision_week: np.ndarray  # weeks after the creation of the account's first lead
    jitter_weeks: np.ndarray  # per lead: its decision relative to its account's

    @property
    def contacts(self) -> np.ndarray:
        return np.bincount(self.of_lead, minlength=len(self.first))


class _FunnelStream:
    """Simulates the blocks in order and hands them out as frames, a chunk of blocks at a time."""

    def __init__(self, n_leads: int, seed: int, start: str, days: int, sal_rejections: bool = False,
                 recycling: bool = False, accounts: bool = False) -> None:
        if n_leads < 1:
            raise ValueError(f"n_leads must be at least 1, got {n_leads}")
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        start_ts = pd.Timestamp(start)
        start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
        self.n = int(n_leads)
        self.seed = int(seed)
        self.days = int(days)
        self.recycling = bool(recycling)
        self.accounts = bool(accounts)
        self.tables = [*_TABLE_FILES, *(_ACCOUNT_TABLE_FILES if self.accounts else ())]
        self.sal_rejections = bool(sal_rejections) or self.recycling  # a second episode follows a rejection
        self.start = start_ts.floor("s")
        self.start_s = int(self.start.timestamp())
        self.span_s = self.days * _DAY_S
        # Event keys pack (second after start, lead index) into one sortable int64.
        if (self.span_s + _LIFE_S) * self.n >= 2**63:
            raise ValueError("n_leads * days is too large to simulate")
        self.id_width = max(7, len(str(self.n)))
        self._tally: np.ndarray | None = None

    def created_offset(self, lead_index: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        """Creation second after `start`: lead i falls uniformly in the i-th of n equal slices.

        Stratifying keeps lead ids in creation order, lets each block draw its own times, and
        bounds from below the creation time (hence every event) of the leads not yet simulated.
        """
        return np.floor((lead_index + jitter) * self.span_s / self.n).astype(np.int64)

    def chunks(self, chunk_size: int) -> Iterator[dict[str, pd.DataFrame]]:
        """Yield the frames of each chunk of blocks, then any further activity pieces.

        `truth()` works once all are consumed.
        """
        n_blocks = -(-self.n // _BLOCK)
        per_chunk = max(1, -(-chunk_size // _BLOCK))
        pending_key = np.empty(0, np.int64)
        pending_kind = np.empty(0, np.int8)
        tally = np.zeros(_TALLY_SIZE)
        n_accounts = 0  # accounts numbered over the whole funnel, in lead order
        for first in range(0, n_blocks, per_chunk):
            blocks = []
            for b in range(first, min(first + per_chunk, n_blocks)):
                blocks.append(_simulate_block(self, b, n_accounts))
                n_accounts += blocks[-1].n_accounts
            for block in blocks:
                tally += block.tally  # always block by block, so sums do not depend on chunking
            next_lead = (first + per_chunk) * _BLOCK
            if next_lead < self.n:
                # Leads not yet simulated are created, and act, no earlier than this second, so
                # the events before it are final.
                horizon = int(self.created_offset(np.array([float(next_lead)]), np.zeros(1))[0])
                limit = horizon * self.n
            else:
                limit = np.iinfo(np.int64).max
            key, kind, pending_key, pending_kind = _merge_events(pending_key, pending_kind, blocks, limit)
            frames = {
                "leads": self._leads_frame(_concat(b.leads for b in blocks)),
                "activities": self._activities_frame(key[:_ACTIVITY_PIECE], kind[:_ACTIVITY_PIECE]),
                "outcomes": self._outcomes_frame(_concat(b.outcomes for b in blocks)),
                "truth_leads": self._truth_frame(_concat(b.truth for b in blocks)),
            }
            if self.accounts:
                frames["accounts"] = self._accounts_frame(_concat(b.accounts for b in blocks))
                frames["truth_accounts"] = self._truth_accounts_frame(_concat(b.truth_accounts for b in blocks))
            yield frames
            # The last chunk releases the whole buffer: hand it out in bounded pieces.
            for at in range(_ACTIVITY_PIECE, len(key), _ACTIVITY_PIECE):
                yield {"activities": self._activities_frame(key[at : at + _ACTIVITY_PIECE],
                                                            kind[at : at + _ACTIVITY_PIECE])}
        self._tally = tally

    def truth(self) -> dict:
        """Ground-truth parameters, driver effects and realised totals (after `chunks` ran)."""
        if self._tally is None:
            raise RuntimeError("the funnel has not been generated yet")
        tally = self._tally
        lead_weeks = tally[_TALLY_WEEKS]
        mean = tally[:_D] / lead_weeks
        spread = np.sqrt(np.maximum(tally[_D : 2 * _D] / lead_weeks - mean**2, 0.0))
        drivers = list(zip(_DRIVERS, spread))
        if self.accounts:
            group_mean = tally[_TALLY_GROUP] / lead_weeks
            drivers.append(("buying_group", np.sqrt(max(tally[_TALLY_GROUP + 1] / lead_weeks - group_mean**2, 0.0))))
        effects = sorted(((name, round(float(v), 4)) for name, v in drivers), key=lambda item: (-item[1], item[0]))
        n_events, n_converted = int(tally[_TALLY_EVENTS]), int(tally[_TALLY_CONVERTED])
        truth = {
            "generation": {"n_leads": self.n, "seed": self.seed, "start": self.start.isoformat(), "days": self.days,
                           "sal_rejections": self.sal_rejections, "recycling": self.recycling,
                           "accounts": self.accounts},
            "life_weeks": LIFE_WEEKS,
            "intercept": _INTERCEPT,
            "fit_effects": {name: dict(zip(attr.values, attr.effects)) for name, attr in _ATTRIBUTES.items()}
            | {"utm_campaign": dict.fromkeys(_CAMPAIGNS, 0.0)},
            "noise_scale": _NOISE_SCALE,
            "engagement_weights": dict(_ENGAGEMENT_WEIGHTS),
            "engagement_half_life_days": _ENGAGEMENT_HALF_LIFE_DAYS,
            "intent_weights": dict(_INTENT_WEIGHTS),
            "intent_half_life_days": _INTENT_HALF_LIFE_DAYS,
            "engagement_coef": _ENGAGEMENT_COEF,
            "intent_coef": _INTENT_COEF,
            "mql_engagement_threshold": _MQL_THRESHOLD,
            "sql_intent_threshold": _SQL_THRESHOLD,
            "hazard": "p_w = sigmoid(intercept + true_fit + engagement_coef * log1p(E_w) + intent_coef * S_w"
                      " + noise), noise ~ N(0, noise_scale) per lead, E_w and S_w at the start of week w",
            "sal_logit": {"intercept": _SAL_LOGIT[0], "slope": _SAL_LOGIT[1]},
            "recycle_after_days": _RECYCLE_AFTER_DAYS,
            "driver_effects": dict(effects),
            "realised": {
                "n_activities": n_events,
                "n_converted": n_converted,
                "conversion_rate": n_converted / self.n,
                "events_per_lead": n_events / self.n,
                "n_sal_accepted": int(tally[_TALLY_ACCEPTED]),
                "n_sal_rejected": int(tally[_TALLY_REJECTED]),
                "n_recycled": int(tally[_TALLY_RECYCLED]),
            },
        }
        if self.accounts:
            n_accounts, n_accounts_converted = int(tally[_TALLY_ACCOUNTS]), int(tally[_TALLY_ACCOUNTS_CONVERTED])
            truth["accounts"] = {
                "contacts": {"distribution": "min(geometric(p), max_contacts), consecutive leads of one block",
                             "p": _ACCOUNT_SIZE_P, "max_contacts": _MAX_CONTACTS},
                "firmographics": list(_FIRMOGRAPHICS),
                "employees_by_company_size": {size: list(bounds) for size, bounds in _EMPLOYEES.items()},
                "in_market_logit": {"intercept": _IN_MARKET_LOGIT[0], "slope": _IN_MARKET_LOGIT[1],
                                    "on": "the mean true_fit of the account's contacts"},
                "decision_jitter_weeks": _DECISION_JITTER_WEEKS,
                "roles": list(_ROLES),
                "role_mapping": {"decision_maker": {"seniority": list(_DECISION_MAKERS)},
                                 **{role: {"department": [d for d, r in _ROLE_BY_DEPARTMENT.items() if r == role]}
                                    for role in ("finance", "technical")},
                                 "user": "every other lead"},
                "buying_group_coef": _BUYING_GROUP_COEF,
                "buying_group_window_weeks": _BUYING_GROUP_WINDOW_WEEKS,
                "buying_group_kinds": list(_BUYING_GROUP_KINDS),
                "buying_group": "G_w = number of distinct buying_role values among the contacts of the lead's "
                                "account (the lead included) with an event of a buying_group_kinds kind in "
                                "[start of week w - buying_group_window_weeks weeks, start of week w)",
                "hazard": "p_w = sigmoid(intercept + true_fit + engagement_coef * log1p(E_w) + intent_coef * S_w"
                          " + buying_group_coef * max(G_w - 1, 0) + noise)",
                "n_accounts": n_accounts,
                "n_converted": n_accounts_converted,
                "conversion_rate": n_accounts_converted / n_accounts,
            }
        return truth

    def _lead_ids(self, index: np.ndarray) -> pa.Array:
        return self._ids("L", index)

    def _ids(self, prefix: str, index: np.ndarray) -> pa.Array:
        digits = pc.utf8_lpad(pc.cast(pa.array(index + 1), pa.large_string()), width=self.id_width, padding="0")
        return _join(prefix, digits)

    def _timestamps(self, offset_s: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
        return pa.array((offset_s + self.start_s) * _US, type=pa.timestamp("us", tz="UTC"), mask=missing)

    def _leads_frame(self, cols: dict[str, np.ndarray]) -> pd.DataFrame:
        first = _take(_FIRST_NAMES, cols["first_name"])
        last = _take(_LAST_NAMES, cols["last_name"])
        domain = _take(_DOMAINS, cols["domain"])
        digits = pc.cast(pa.array(cols["phone"]), pa.large_string())
        profile = {name: _take(_ATTRIBUTES[name].values, cols[name])
                   for name in ("seniority", "department", "company_size", "industry", "country", "lead_source")}
        return pa.table({
            "lead_id": self._lead_ids(cols["index"]),
            "created_at": self._timestamps(cols["created"]),
            "first_name": first,
            "last_name": last,
            "email": pc.utf8_lower(_join(first, ".", last, "@", domain)),
            "phone": _join(_take(_DIAL_CODES, cols["country"]), " ", pc.utf8_slice_codeunits(digits, 0, 3), " ",
                           pc.utf8_slice_codeunits(digits, 3, 10)),
            "job_title": _take(_JOB_TITLES, cols["job_title"]),
            **profile,
            "utm_campaign": _take(_CAMPAIGNS, cols["utm_campaign"]),
            **({"account_id": self._ids("A", cols["account"]), "buying_role": _take(_ROLES, cols["buying_role"])}
               if self.accounts else {}),
        }).to_pandas()

    def _accounts_frame(self, cols: dict[str, np.ndarray]) -> pd.DataFrame:
        return pa.table({
            "account_id": self._ids("A", cols["index"]),
            **{name: _take(_ATTRIBUTES[name].values, cols[name]) for name in _FIRMOGRAPHICS},
            "employees": cols["employees"],
        }).to_pandas()

    def _truth_accounts_frame(self, cols: dict[str, np.ndarray]) -> pd.DataFrame:
        return pa.table({
            "account_id": self._ids("A", cols["index"]),
            "in_market": cols["in_market"],
            "decision_at": self._timestamps(cols["decision"], missing=~cols["in_market"]),
            "contacts": cols["contacts"],
            "converted_at": self._timestamps(cols["converted"], missing=cols["converted"] < 0),
            "p_convert_life": cols["p_convert_life"],
        }).to_pandas()

    def _activities_frame(self, key: np.ndarray, kind: np.ndarray) -> pd.DataFrame:
        lead = key % self.n
        # Format each id once per lead, not once per event.
        low = int(lead.min()) if len(lead) else 0
        ids = self._lead_ids(np.arange(low, int(lead.max()) + 1 if len(lead) else 0))
        return pa.table({
            "lead_id": ids.take(pa.array(lead - low)),
            "timestamp": self._timestamps(key // self.n),
            "activity_type": _take(_KIND_TYPE, kind),
            "page": _take(_KIND_PAGE, kind),
            "channel": _take(_KIND_CHANNEL, kind),
        }).to_pandas()

    def _outcomes_frame(self, cols: dict[str, np.ndarray]) -> pd.DataFrame:
        return pa.table({
            "lead_id": self._lead_ids(cols["index"]),
            "stage": _take(_STAGES, cols["stage"]),
            "timestamp": self._timestamps(cols["time"]),
        }).to_pandas()

    def _truth_frame(self, cols: dict[str, np.ndarray]) -> pd.DataFrame:
        return pa.table({
            "lead_id": self._lead_ids(cols["index"]),
            "true_fit": cols["true_fit"],
            "interest": cols["interest"],
            "in_market": cols["in_market"],
            "decision_at": self._timestamps(cols["decision"], missing=~cols["in_market"]),
            "converted_at": self._timestamps(cols["converted"], missing=cols["converted"] < 0),
            "p_convert_life": cols["p_convert_life"],
        }).to_pandas()


def _simulate_block(stream: _FunnelStream, block: int, account_offset: int = 0) -> _Block:
    """Simulate the leads of one block from the block's own random stream, vectorised over leads.

    Times are whole seconds; inside the block they count from each lead's creation. With accounts,
    the block's accounts are numbered from `account_offset` (the accounts of the blocks before it).
    """
    rng = np.random.default_rng(np.random.SeedSequence(stream.seed, spawn_key=(block,)))
    lo = block * _BLOCK
    m = min(_BLOCK, stream.n - lo)
    index = np.arange(lo, lo + m, dtype=np.int64)
    created = stream.created_offset(index.astype(float), rng.random(m))

    # Profile --------------------------------------------------------------------------------
    codes = {name: rng.choice(len(attr.values), size=m, p=attr.probs) for name, attr in _ATTRIBUTES.items()}
    codes["seniority"] = np.where(codes["department"] == _STUDENT, _INTERN, codes["seniority"])
    accounts = _draw_accounts(stream.seed, block, m) if stream.accounts else None
    if accounts is not None:
        # A company's contacts share its firmographics, set before true_fit so that the truth holds them.
        # The main stream's own draws were made all the same, so that it stays aligned with accounts=False.
        for name in _FIRMOGRAPHICS:
            codes[name] = accounts.codes[name][accounts.of_lead]
    true_fit = sum(np.asarray(attr.effects)[codes[name]] for name, attr in _ATTRIBUTES.items())
    noise = rng.normal(0.0, _NOISE_SCALE, m)
    shown = {name: np.where(rng.random(m) < _MISSING_RATE, -1, codes[name]) if name in _MASKED else codes[name]
             for name in _ATTRIBUTES}
    personal = {
        "utm_campaign": rng.integers(0, len(_CAMPAIGNS), m),
        "first_name": rng.integers(0, len(_FIRST_NAMES), m),
        "last_name": rng.integers(0, len(_LAST_NAMES), m),
        "domain": rng.integers(0, len(_DOMAINS), m),
        "phone": rng.integers(2_000_000_000, 10_000_000_000, m),
    }
    if accounts is not None:
        personal["domain"] = accounts.domain[accounts.of_lead]  # one company, one email domain

    # Latent state ---------------------------------------------------------------------------
    mean_interest = _SOURCE_INTEREST[codes["lead_source"]] * np.exp(_INTEREST_FIT_SLOPE * true_fit)
    interest = rng.gamma(_INTEREST_SHAPE, mean_interest / _INTEREST_SHAPE)
    in_market = rng.random(m) < _sigmoid(_IN_MARKET_LOGIT[0] + _IN_MARKET_LOGIT[1] * true_fit)
    decision_week = rng.random(m) * LIFE_WEEKS
    if accounts is not None:
        # The company is in market, and decides, as a whole; each contact's decision is a little off its account's.
        mean_fit = np.bincount(accounts.of_lead, weights=true_fit) / accounts.contacts
        account_market = accounts.market_draw < _sigmoid(_IN_MARKET_LOGIT[0] + _IN_MARKET_LOGIT[1] * mean_fit)
        account_decision = created[accounts.first] + np.floor(accounts.decision_week * _WEEK_S).astype(np.int64)
        in_market = account_market[accounts.of_lead]
        decision_week = (account_decision[accounts.of_lead] - created) / _WEEK_S + accounts.jitter_weeks

    # Activities: Poisson counts per (lead, week, kind), then one row per event -----------------
    mid_week = np.arange(LIFE_WEEKS) + 0.5
    fade = np.exp(-mid_week / _INTEREST_FADE_WEEKS)
    to_decision = decision_week[:, None] - mid_week
    window = in_market[:, None] * np.where(
        to_decision >= 0, np.exp(-to_decision / _WINDOW_LEAD_WEEKS), np.exp(to_decision / _WINDOW_TAIL_WEEKS)
    )
    rate = (
        (interest[:, None] * fade)[:, :, None] * _ENGAGEMENT_RATE
        + (window * np.sqrt(interest)[:, None])[:, :, None] * _WINDOW_RATE
        + _BACKGROUND_RATE
    )
    rate[:, :, _KIND_INDEX["page_view:careers"]] = _CAREERS_RATE[codes["seniority"]][:, None] * fade
    counts = rng.poisson(rate)
    counts[:, :, _KIND_INDEX["email_click"]] = rng.binomial(counts[:, :, _KIND_INDEX["email_open"]], _CLICK_SHARE)

    cell = np.repeat(np.arange(counts.size), counts.ravel())
    lead, week, kind = cell // (LIFE_WEEKS * _K), (cell // _K) % LIFE_WEEKS, cell % _K
    time = week * _WEEK_S + rng.integers(0, _WEEK_S, len(cell))
    order = np.argsort(lead * _LIFE_S + time, kind="stable")
    lead, week, kind, time = lead[order], week[order], kind[order], time[order]

    # Conversion: weekly hazard from the decayed states at the start of each week --------------
    per_kind_e = _week_start_states(lead, week, kind, time, m, _ENGAGEMENT_HALF_LIFE_DAYS)
    per_kind_s = _week_start_states(lead, week, kind, time, m, _INTENT_HALF_LIFE_DAYS)
    engagement = per_kind_e @ _W_ENGAGEMENT
    intent = per_kind_s @ _W_INTENT
    logit = (_INTERCEPT + (true_fit + noise)[:, None] + _ENGAGEMENT_COEF * np.log1p(engagement)
             + _INTENT_COEF * intent)
    if accounts is not None:
        role = _ROLE_OF[codes["seniority"], codes["department"]]
        active_roles = _active_roles(accounts.of_lead, role, created, lead, kind, time)
        group_term = _BUYING_GROUP_COEF * np.maximum(active_roles - 1, 0)
        logit = logit + group_term
    hazard = _sigmoid(logit)
    success = rng.random((m, LIFE_WEEKS)) < hazard
    converts = success.any(axis=1)
    conv_week = np.where(converts, success.argmax(axis=1), LIFE_WEEKS)
    conv_time = np.where(converts, conv_week * _WEEK_S + rng.integers(0, _WEEK_S, m), -1)
    end_time = np.where(converts, conv_time, _LIFE_S)

    keep = time <= end_time[lead]
    lead, week, kind, time = lead[keep], week[keep], kind[keep], time[keep]

    # Stages ---------------------------------------------------------------------------------
    e_after = _state_after_events(lead, week, kind, time, engagement, _W_ENGAGEMENT, _ENGAGEMENT_HALF_LIFE_DAYS)
    s_after = _state_after_events(lead, week, kind, time, intent, _W_INTENT, _INTENT_HALF_LIFE_DAYS)
    t_mql = _first_time(lead, time, e_after >= _MQL_THRESHOLD, m)
    t_intent = _first_time(lead, time, s_after >= _SQL_THRESHOLD, m)
    accepted = rng.random(m) < _sigmoid(_SAL_LOGIT[0] + _SAL_LOGIT[1] * true_fit)
    delay = ((_SAL_DELAY_DAYS[0] + rng.exponential(_SAL_DELAY_DAYS[1], m)) * _DAY_S).astype(np.int64)
    # Sales cannot decide on a lead after it has converted or left the funnel.
    decided = (t_mql >= 0) & (t_mql + delay <= end_time)
    t_sal = np.where(accepted & decided, t_mql + delay, -1)
    # A rejection reuses the decision and delay already drawn: the random stream is the same with or without it.
    t_rejected = np.where(~accepted & decided & stream.sal_rejections, t_mql + delay, -1)
    t_sql = np.where(t_intent >= 0, np.maximum.reduce([t_intent, t_mql, t_sal]), -1)
    second = _second_episode(stream, block, lead, time, e_after, t_rejected, true_fit, end_time)
    stage_time = np.stack([t_mql, t_sal, t_rejected, t_sql, np.where(converts, conv_time, -1),
                           np.where(converts, -1, _LIFE_S), *second], axis=1)
    out_lead, out_stage = np.nonzero(stage_time >= 0)  # row-major: per lead, in funnel order, a second episode last

    at_risk = np.arange(LIFE_WEEKS) <= conv_week[:, None]
    tally = _tally(codes, at_risk, engagement, per_kind_e, per_kind_s)
    tally[_TALLY_EVENTS] = len(lead)
    tally[_TALLY_CONVERTED] = converts.sum()
    tally[_TALLY_ACCEPTED] = (accepted & decided).sum() + (second[1] >= 0).sum()
    tally[_TALLY_REJECTED] = (~accepted & decided).sum() + (second[2] >= 0).sum()
    tally[_TALLY_RECYCLED] = (second[0] >= 0).sum()
    p_convert_life = 1.0 - np.prod(1.0 - hazard, axis=1)
    converted = np.where(converts, created + conv_time, -1)
    account_tables: dict[str, dict[str, np.ndarray] | None] = {"accounts": None, "truth_accounts": None}
    if accounts is not None:
        tally[_TALLY_GROUP] = np.sum(at_risk * group_term)
        tally[_TALLY_GROUP + 1] = np.sum(at_risk * group_term**2)
        account_tables = _account_tables(accounts, account_offset, account_market, account_decision,
                                         converted, p_convert_life)
        tally[_TALLY_ACCOUNTS] = len(accounts.first)
        tally[_TALLY_ACCOUNTS_CONVERTED] = (account_tables["truth_accounts"]["converted"] >= 0).sum()

    event_key = (created[lead] + time) * stream.n + index[lead]
    order = np.argsort(event_key, kind="stable")
    n_departments = len(_ATTRIBUTES["department"].values)
    return _Block(
        leads={
            "index": index,
            "created": created,
            **shown,
            **personal,
            "job_title": codes["seniority"] * n_departments + codes["department"],
            **({"account": account_offset + accounts.of_lead, "buying_role": role} if accounts is not None else {}),
        },
        truth={
            "index": index,
            "true_fit": true_fit,
            "interest": interest,
            "in_market": in_market,
            "decision": created + np.floor(decision_week * _WEEK_S).astype(np.int64),
            "converted": converted,
            "p_convert_life": p_convert_life,
        },
        outcomes={
            "index": index[out_lead],
            "stage": out_stage,
            "time": created[out_lead] + stage_time[out_lead, out_stage],
        },
        event_key=event_key[order],
        event_kind=kind[order].astype(np.int8),
        tally=tally,
        **account_tables,
    )


def _draw_accounts(seed: int, block: int, m: int) -> _Accounts:
    """Group the block's `m` leads into accounts of consecutive leads and draw what belongs to each account.

    Everything comes from a stream of its own, child (block, 2) of the seed, so that the block's main
    stream, and with it every row of a funnel without accounts, is the same with or without them."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block, 2)))
    sizes = np.minimum(rng.geometric(_ACCOUNT_SIZE_P, m), _MAX_CONTACTS)
    ends = np.cumsum(sizes)
    n_accounts = int(np.searchsorted(ends, m)) + 1  # the block's last account is cut at its end
    ends = np.minimum(ends[:n_accounts], m)
    first = np.concatenate([[0], ends[:-1]])
    codes = {name: rng.choice(len(_ATTRIBUTES[name].values), size=n_accounts, p=_ATTRIBUTES[name].probs)
             for name in _FIRMOGRAPHICS}
    domain = rng.integers(0, len(_DOMAINS), n_accounts)
    low, high = _EMPLOYEE_BOUNDS[codes["company_size"]].T
    employees = np.floor(low * np.exp(rng.random(n_accounts) * np.log((high + 1) / low))).astype(np.int64)
    return _Accounts(
        of_lead=np.repeat(np.arange(n_accounts), ends - first),
        first=first,
        codes=codes,
        domain=domain,
        employees=np.clip(employees, low.astype(np.int64), high.astype(np.int64)),
        market_draw=rng.random(n_accounts),
        decision_week=rng.random(n_accounts) * LIFE_WEEKS,
        jitter_weeks=rng.normal(0.0, _DECISION_JITTER_WEEKS, m),
    )


def _active_roles(
    of_lead: np.ndarray, role: np.ndarray, created: np.ndarray, lead: np.ndarray, kind: np.ndarray, time: np.ndarray,
) -> np.ndarray:
    """Per lead and week of its life, how many distinct roles of its account's contacts had a buying-group event
    in the ``_BUYING_GROUP_WINDOW_WEEKS`` weeks before the week starts (events strictly before it).

    Returns shape (leads, weeks).

    The whole simulated paths count, like the weekly states: the events a contact's conversion then drops come
    after the account's first conversion, so they never change when an account first converts."""
    m = len(of_lead)
    hit = _GROUP_KIND[kind]
    base = int(created.min())
    at = created[lead[hit]] - base + time[hit]  # seconds since the block's first lead was created
    span = int(created.max()) - base + _LIFE_S + 1  # every such time and week start is below it
    group = of_lead * len(_ROLES) + role  # (account, role) of each lead
    keys = np.sort(group[lead[hit]] * span + at)
    week_start = (created - base)[:, None] + np.arange(LIFE_WEEKS) * _WEEK_S
    window_start = np.maximum(week_start - _BUYING_GROUP_WINDOW_WEEKS * _WEEK_S, 0)
    count = np.zeros((m, LIFE_WEEKS), dtype=np.int64)
    for r in range(len(_ROLES)):
        offset = ((of_lead * len(_ROLES) + r) * span)[:, None]
        count += np.searchsorted(keys, offset + week_start) > np.searchsorted(keys, offset + window_start)
    return count


def _account_tables(
    accounts: _Accounts, offset: int, in_market: np.ndarray, decision: np.ndarray, converted: np.ndarray,
    p_convert_life: np.ndarray,
) -> dict[str, dict[str, np.ndarray]]:
    """The accounts table and the account truth of one block, as numbers (times in seconds after start)."""
    index = offset + np.arange(len(accounts.first))
    never = np.iinfo(np.int64).max
    first_conversion = np.minimum.reduceat(np.where(converted >= 0, converted, never), accounts.first)
    return {
        "accounts": {"index": index, **accounts.codes, "employees": accounts.employees},
        "truth_accounts": {
            "index": index,
            "in_market": in_market,
            "decision": decision,
            "contacts": accounts.contacts.astype(np.int64),
            "converted": np.where(first_conversion == never, -1, first_conversion),
            # Given the simulated paths the contacts' weekly draws are independent: the account stays
            # unconverted only if every contact does.
            "p_convert_life": 1.0 - np.multiply.reduceat(1.0 - p_convert_life, accounts.first),
        },
    }


def _second_episode(
    stream: _FunnelStream, block: int, lead: np.ndarray, time: np.ndarray, e_after: np.ndarray,
    t_rejected: np.ndarray, true_fit: np.ndarray, end_time: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lead the times (or -1) of the MQL, SAL and rejection of its second episode, with `stream.recycling`.

    The decision is drawn from a stream of its own, child (block, 1) of the seed, so that the block's main
    stream, and with it every other row, is the same with or without recycling."""
    m = len(t_rejected)
    none = np.full(m, -1, dtype=np.int64)
    if not stream.recycling:
        return none, none, none
    rng = np.random.default_rng(np.random.SeedSequence(stream.seed, spawn_key=(block, 1)))
    accepted = rng.random(m) < _sigmoid(_SAL_LOGIT[0] + _SAL_LOGIT[1] * true_fit)
    delay = ((_SAL_DELAY_DAYS[0] + rng.exponential(_SAL_DELAY_DAYS[1], m)) * _DAY_S).astype(np.int64)
    rejected = t_rejected[lead]
    back = (rejected >= 0) & (time >= rejected + _RECYCLE_AFTER_DAYS * _DAY_S) & (e_after >= _MQL_THRESHOLD)
    t_mql = _first_time(lead, time, back, m)
    decided = (t_mql >= 0) & (t_mql + delay <= end_time)
    return (t_mql, np.where(accepted & decided, t_mql + delay, -1), np.where(~accepted & decided, t_mql + delay, -1))


def _merge_events(
    pending_key: np.ndarray, pending_kind: np.ndarray, blocks: list[_Block], limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge buffered and new events by key; split into those before `limit` and the rest."""
    # Every piece is sorted already; the stable sort (timsort) merges such runs cheaply.
    key = np.concatenate([pending_key, *(b.event_key for b in blocks)])
    kind = np.concatenate([pending_kind, *(b.event_kind for b in blocks)])
    order = np.argsort(key, kind="stable")
    key, kind = key[order], kind[order]
    cut = int(np.searchsorted(key, limit, side="left"))
    # Copies, so that the buffer does not keep the whole merged array alive.
    return key[:cut], kind[:cut], key[cut:].copy(), kind[cut:].copy()


def _week_start_states(
    lead: np.ndarray, week: np.ndarray, kind: np.ndarray, time: np.ndarray, m: int, half_life_days: float
) -> np.ndarray:
    """Decayed count of each kind at the start of each week, shape (leads, weeks, kinds).

    Exact for the event times: each event is decayed to the end of its week, and the weekly
    totals are then carried forward by whole-week decay factors.
    """
    half_life = half_life_days * _DAY_S
    at_week_end = np.exp2(-((week + 1) * _WEEK_S - time) / half_life)
    added = np.bincount((lead * LIFE_WEEKS + week) * _K + kind, weights=at_week_end,
                        minlength=m * LIFE_WEEKS * _K).reshape(m, LIFE_WEEKS, _K)
    # state[w] = sum over earlier weeks k of added[k] * step ** (w - 1 - k): one matrix product.
    lag = np.arange(LIFE_WEEKS)[:, None] - np.arange(LIFE_WEEKS)[None, :] - 1
    carry = np.where(lag >= 0, np.exp2(-np.maximum(lag, 0) * _WEEK_S / half_life), 0.0)
    return np.matmul(carry, added)


def _state_after_events(
    lead: np.ndarray, week: np.ndarray, kind: np.ndarray, time: np.ndarray,
    week_start: np.ndarray, weights: np.ndarray, half_life_days: float,
) -> np.ndarray:
    """The decayed weighted state just after each event (events sorted by lead, then time).

    State after an event = the week-start state decayed to the event, plus the decayed weights
    of this week's events up to it; a cumulative sum within each (lead, week) run does the latter.
    """
    half_life = half_life_days * _DAY_S
    week_end = (week + 1) * _WEEK_S
    total = np.cumsum(weights[kind] * np.exp2((time - week_end) / half_life))  # valued at week end
    new_run = np.ones(len(lead), dtype=bool)
    new_run[1:] = (lead[1:] != lead[:-1]) | (week[1:] != week[:-1])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(lead)), 0))
    before_run = np.where(run_start > 0, total[run_start - 1], 0.0)
    carried = week_start[lead, week] * np.exp2(-_WEEK_S / half_life)
    return (carried + total - before_run) * np.exp2((week_end - time) / half_life)


def _first_time(lead: np.ndarray, time: np.ndarray, hit: np.ndarray, m: int) -> np.ndarray:
    """Per lead, the time of the first event where `hit` holds, or -1 (events sorted by lead, time)."""
    first = np.full(m, -1, dtype=np.int64)
    rows = np.flatnonzero(hit)
    leads, at = np.unique(lead[rows], return_index=True)
    first[leads] = time[rows[at]]
    return first


def _tally(
    codes: dict[str, np.ndarray], at_risk: np.ndarray, engagement: np.ndarray,
    per_kind_e: np.ndarray, per_kind_s: np.ndarray,
) -> np.ndarray:
    """Sums and sums of squares of each driver's hazard log-odds contribution over at-risk weeks."""
    tally = np.zeros(_TALLY_SIZE)
    weeks_at_risk = at_risk.sum(axis=1)
    for i, (name, attr) in enumerate(_ATTRIBUTES.items()):
        effect = np.asarray(attr.effects)[codes[name]]
        tally[i] = weeks_at_risk @ effect
        tally[_D + i] = weeks_at_risk @ effect**2
    # utm_campaign (the next driver) contributes nothing: its sums stay 0.
    # Engagement term per unit of E; where E is 0 every kind's share of it is 0 as well.
    per_unit = np.divide(_ENGAGEMENT_COEF * np.log1p(engagement), engagement,
                         out=np.zeros_like(engagement), where=engagement > 0)
    contribution = per_kind_e * (per_unit[:, :, None] * _W_ENGAGEMENT) + per_kind_s * (_INTENT_COEF * _W_INTENT)
    weight = at_risk.astype(float)
    first_kind = len(_ATTRIBUTES) + 1
    tally[first_kind:_D] = np.einsum("mw,mwk->k", weight, contribution)
    tally[_D + first_kind : 2 * _D] = np.einsum("mw,mwk->k", weight, contribution**2)
    tally[_TALLY_WEEKS] = weeks_at_risk.sum()
    return tally


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Strings are built as Arrow large_string, the type behind pandas' string dtype, so that turning
# the tables into frames does not copy them.


def _take(values: tuple, codes: np.ndarray) -> pa.Array:
    """Values by code as an Arrow string array; code -1 gives a missing value."""
    return pa.array(values, type=pa.large_string()).take(pa.array(codes, mask=codes < 0))


def _join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate string arrays and literals element-wise."""
    parts = [pa.scalar(part, pa.large_string()) if isinstance(part, str) else part for part in parts]
    return pc.binary_join_element_wise(*parts, pa.scalar("", pa.large_string()))


def _concat(parts: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = list(parts)
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class _TableWriter:
    """Appends frames to a temporary file beside `path`; `commit` renames it into place."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        with warnings.catch_warnings():
            # pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates;
            # the conversion itself is correct, so the warning is only noise here.
            warnings.filterwarnings("ignore", message="Series.values returning", category=DeprecationWarning)
            table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            # The first piece fixes the schema (and its pandas metadata) for the whole file.
            self._schema = table.schema
            self._writer = (pq.ParquetWriter(self.tmp, self._schema) if self.fmt == "parquet"
                            else pacsv.CSVWriter(self.tmp, self._schema))
        elif table.num_rows == 0:
            return
        elif not table.schema.equals(self._schema, check_metadata=False):
            table = table.cast(self._schema)
        self._writer.write_table(table)

    def commit(self) -> Path:
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def _open_writers(out_dir: Path, fmt: str, names: Iterable[str]) -> dict[str, _TableWriter]:
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {_FORMATS}, got {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _TableWriter] = {}
    try:
        for name in names:
            writers[name] = _TableWriter(out_dir / f"{_FILE_STEMS[name]}.{fmt}", fmt)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    return writers


def _commit(writers: dict[str, _TableWriter], truth: dict, out_dir: Path) -> dict[str, Path]:
    """Rename the finished tables into place and write ``ground_truth.json`` the same way."""
    paths = {_FILE_STEMS[name]: writer.commit() for name, writer in writers.items()}
    target = out_dir / f"{_TRUTH_FILE}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(truth, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    paths[_TRUTH_FILE] = target
    return paths
