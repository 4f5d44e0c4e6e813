"""The published support period (EN 303 645 5.3-13, PSTI Sch. 1 para 3, CRA Art. 13(8), Annex II).

`publish_support` writes a support statement into the release repository, so the same static
server that delivers updates serves it, with no login and no cookies::

    <repo>/<product>/support/index.html    a plain English page
    <repo>/<product>/support/support.json  the same facts, machine-readable
    <repo>/<product>/support/label.txt     box-label text (model, end month and year)
    <repo>/<product>/support/history.json  every statement published, oldest first

Invariants:
- the end date is never earlier than one published before: the history, and every signed
  manifest of the product in the repository (their ``support_end``), are the record;
- a period under five years from the first release is allowed but warned about (CRA Art. 13(8)
  asks for at least five years unless the product is expected to be in use for less);
- every file is written atomically (`otakit.repo.write_atomic`).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from otakit.errors import RepoError
from otakit.manifest import parse_unverified
from otakit.repo import Repository, write_atomic

MIN_YEARS = 5


@dataclass
class SupportStatement:
    """The facts of one statement."""

    product: str
    model: str
    manufacturer: str
    end: str  # YYYY-MM-DD
    first_release: str  # YYYY-MM-DD
    published: str  # YYYY-MM-DD
    update_url: str = ""
    contact: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def end_month_year(self) -> str:
        """E.g. ``December 2031``."""
        return dt.date.fromisoformat(self.end).strftime("%B %Y")


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RepoError(f"{what} {text!r} is not a YYYY-MM-DD date",
                        reason="BAD_ARGUMENT") from None


def support_dir(repo: Repository, product: str) -> Path:
    """``<repo>/<product>/support``."""
    return repo.root / product / "support"


def history(repo: Repository, product: str) -> list[dict]:
    """Every statement published for ``product``, oldest first."""
    path = support_dir(repo, product) / "history.json"
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise RepoError(f"{path} is unreadable ({e})", reason="BAD_REPO") from e


def _manifest_facts(repo: Repository, product: str) -> tuple[str | None, str | None]:
    """(latest support_end, earliest created date) over the product's manifests."""
    ends, created = [], []
    for path in repo.manifests():
        if path.relative_to(repo.root).parts[0] != product:
            continue
        body = parse_unverified(path.read_bytes()).body
        ends.append(body.support_end)
        created.append(dt.datetime.fromtimestamp(body.created, dt.UTC).date().isoformat())
    return (max(ends) if ends else None), (min(created) if created else None)


def plan_support(repo: Repository, product: str, model: str, end: str | None, *,
                 manufacturer: str = "", first_release: str | None = None,
                 update_url: str = "", contact: str = "",
                 today: dt.date | None = None) -> SupportStatement:
    """The statement to publish, after the never-shorten check.

    Raises:
        RepoError: ``BAD_ARGUMENT`` (no end date known, a bad date, an end in the past) or
            ``SHORTENED`` (earlier than a date published before).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    past = history(repo, product)
    signed_end, first_created = _manifest_facts(repo, product)
    end = end or signed_end
    if end is None:
        raise RepoError("give --end: no release of this product carries a support_end yet",
                        reason="BAD_ARGUMENT")
    end_d = _date(end, "--end")
    if end_d < today:
        raise RepoError(f"--end {end} is in the past", reason="BAD_ARGUMENT")
    before = [(h["end"], "published on " + h["published"]) for h in past]
    if signed_end:
        before.append((signed_end, "signed in a release manifest"))
    for prev, where in before:
        if end < prev:
            raise RepoError(f"--end {end} would shorten the support period ({prev}, {where}); "
                            "a published support period may be extended, never shortened",
                            reason="SHORTENED")
    first = (past[0]["first_release"] if past else None) or first_release or first_created \
        or today.isoformat()
    first_d = _date(first, "--first-release")
    warnings = []
    try:
        five = first_d.replace(year=first_d.year + MIN_YEARS)
    except ValueError:  # 29 February
        five = first_d.replace(year=first_d.year + MIN_YEARS, day=28)
    if end_d < five:
        warnings.append(f"the support period ({first} to {end}) is under {MIN_YEARS} years "
                        "from the first release; CRA Art. 13(8) asks for at least five years "
                        "unless the product is expected to be in use for less")
    return SupportStatement(product=product, model=model, manufacturer=manufacturer, end=end,
                            first_release=first, published=today.isoformat(),
                            update_url=update_url, contact=contact, warnings=warnings)


HOW_DELIVERED = ("Updates are delivered over the internet and installed automatically: the "
                 "device checks for updates shortly after it starts and then about once a day. "
                 "Every update is signed by the manufacturer and checked by the device before "
                 "it is installed. If an update does not start correctly, the device goes back "
                 "to the previous version by itself. You will be told before the device "
                 "restarts, and your settings are kept.")
HOW_OFF = ("Automatic updates are on when the device is new. To turn automatic installing off, "
           "open the device's settings and switch off \"Install updates automatically\" (the "
           "app calls this setting auto_install). The device will still check for updates and "
           "tell you about them, and you can install each one yourself. You can also postpone "
           "an update; a security update can be postponed for at most 7 days.")


def render(st: SupportStatement) -> dict[str, str]:
    """The three published files' text: ``index.html``, ``support.json``, ``label.txt``."""
    who = f" by {st.manufacturer}" if st.manufacturer else ""
    facts = {
        "product": st.product, "model": st.model, "manufacturer": st.manufacturer,
        "support_end": st.end, "support_end_month_year": st.end_month_year,
        "first_release": st.first_release, "published": st.published,
        "how_updates_are_delivered": HOW_DELIVERED, "how_to_turn_automatic_updates_off": HOW_OFF,
        "update_server": st.update_url, "contact": st.contact,
    }
    e = html.escape
    contact = f"<p>Questions or security reports: {e(st.contact)}</p>" if st.contact else ""
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{e(st.model)}: security updates until {e(st.end_month_year)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>{e(st.model)}</h1>
<p><strong>Security updates are provided until {e(st.end_month_year)} (until {e(st.end)}).</strong></p>
<p>This is the defined support period of the {e(st.model)}{e(who)}: the minimum time for which
security updates will be provided. It will not be shortened. If it is extended, this page will
say so.</p>
<h2>How updates are delivered</h2>
<p>{e(HOW_DELIVERED)}</p>
<h2>How to turn automatic updates off</h2>
<p>{e(HOW_OFF)}</p>
{contact}
<p>Published {e(st.published)}. The same facts as data: <a href="support.json">support.json</a>.</p>
</body>
</html>
"""
    label = (f"{st.model}\nSecurity updates until: {st.end_month_year}\n"
             f"Updates install automatically; you can turn this off in the device settings.\n")
    return {"index.html": page, "support.json": json.dumps(facts, indent=2) + "\n",
            "label.txt": label}


def publish_support(repo: Repository, st: SupportStatement) -> Path:
    """Write the statement's files and append it to the history; return the directory."""
    d = support_dir(repo, st.product)
    d.mkdir(parents=True, exist_ok=True)
    for name, text in render(st).items():
        write_atomic(d / name, text.encode())
    past = history(repo, st.product)
    entry = asdict(st)
    entry.pop("warnings")
    write_atomic(d / "history.json", (json.dumps([*past, entry], indent=1) + "\n").encode())
    return d
