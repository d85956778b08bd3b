"""Identity across sources: one person known to two sources is one contact.

HubSpot knows a person by email, Stripe by its customer id, the host's database by its own
user id. A source declares the keys its contacts are matched by (``identity = ["email"]`` in
its ``[sources.NAME]`` table: ``email``, ``phone``); its own id for each contact is always a
key too (``id:<source>:<id>``). When a sync stores a page, each contact's keys are looked up
in the identity map (:mod:`onetomany.store.queries.identity`):

- no key is claimed yet: the contact keeps the id the source gave, and its keys are claimed
  for it;
- the claimed keys all name one contact: the record is stored as that contact (its fields
  merged onto the stored ones as usual), and its unclaimed keys are claimed for it;
- the keys name two contacts (an email claimed by one source for one contact, while this
  source's own id names another), or the source gives its contact another value for a key
  kind the contact already has a claimed key of (a changed email, or an email another source
  claimed otherwise): a **conflict**. The record is skipped with a reason
  naming both contacts and both sources, and the cursor holds (as for every skip), so it is
  reported at every sync until someone fixes the data or releases the stale key
  (:func:`~onetomany.store.queries.identity.forget_key`). Nothing is overwritten silently.

Events a source gives for a contact (``contact_id`` its own id) are stored for the contact its
id key names. Sources that declare no ``identity`` are stored as they always were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from onetomany.model import Contact, Event
from onetomany.plugins.sources import Skipped, SyncPage
from onetomany.store import Store
from onetomany.store.queries.identity import (
    Claim,
    claim_keys,
    claims_of_contacts,
    claims_of_keys,
)


def own_key(source: str, contact_id: str) -> str:
    """The key of a source's own id for a contact."""
    return f"id:{source}:{contact_id}"


def keys_of(contact: Contact, source: str, declared: Sequence[str]) -> list[str]:
    """``contact``'s keys as ``source`` gives them: its own id, then each declared field."""
    keys = [own_key(source, contact.id)]
    for field in declared:
        value = getattr(contact, field)
        if value:
            keys.append(f"{field}:{str(value).strip().lower()}")
    return keys


@attrs.frozen(kw_only=True)
class Resolved:
    """A page with its contacts and events under their identities, and the keys to claim
    once it is stored."""

    page: SyncPage
    claims: tuple[Claim, ...]


def resolve(store: Store, source: str, declared: Sequence[str], page: SyncPage) -> Resolved:
    """``page`` with each contact renamed to the contact its keys name, its conflicts moved
    to ``skipped``, and its events pointed at the resolved contacts."""
    wanted = {c.id: keys_of(c, source, declared) for c in page.contacts}
    event_keys = [own_key(source, e.contact_id) for e in page.events if e.contact_id]
    found = claims_of_keys(store, [k for ks in wanted.values() for k in ks] + event_keys)
    earlier = _earlier(store, found, wanted)
    contacts: list[Contact] = []
    skipped: list[Skipped] = list(page.skipped)
    claims: list[Claim] = []
    for contact in page.contacts:
        keys = wanted[contact.id]
        problem = _conflict(source, keys, found, earlier)
        if problem is not None:
            skipped.append(Skipped(record=f"{source} contact {contact.id}", reason=problem))
            continue
        named = {found[k].contact_id for k in keys if k in found}
        canonical = named.pop() if named else contact.id
        for key in keys:
            if key not in found:
                found[key] = Claim(key=key, contact_id=canonical, source=source)
                claims.append(found[key])
        contacts.append(contact if canonical == contact.id else _renamed(contact, canonical))
    events = [_pointed(e, source, found) for e in page.events]
    return Resolved(
        page=attrs.evolve(page, contacts=contacts, events=events, skipped=skipped),
        claims=tuple(claims),
    )


def _earlier(
    store: Store, found: Mapping[str, Claim], wanted: Mapping[str, list[str]]
) -> dict[str, list[Claim]]:
    """Every key claimed before for the contacts this page's own ids name, by contact."""
    known = {found[ks[0]].contact_id for ks in wanted.values() if ks[0] in found}
    by_contact: dict[str, list[Claim]] = {}
    for claim in claims_of_contacts(store, known):
        by_contact.setdefault(claim.contact_id, []).append(claim)
    return by_contact


def _conflict(
    source: str,
    keys: list[str],
    found: Mapping[str, Claim],
    earlier: Mapping[str, list[Claim]],
) -> str | None:
    named = {found[k].contact_id: found[k] for k in keys if k in found}
    if len(named) > 1:
        a, b = sorted(named.values(), key=lambda c: c.key)[:2]
        return (
            f"identity conflict: {a.key} is contact {a.contact_id!r} (claimed by source "
            f"{a.source!r}) but {b.key} is contact {b.contact_id!r} (claimed by source "
            f"{b.source!r}); not merged"
        )
    own = found.get(keys[0])
    if own is None:
        return None
    given = {k.split(":", 1)[0]: k for k in keys[1:]}
    for claim in earlier.get(own.contact_id, []):
        kind, value = claim.key.split(":", 1)
        if kind not in given or claim.key == given[kind] or kind == "id":
            continue
        new = given[kind].split(":", 1)[1]
        if claim.source == source:
            return (
                f"identity conflict: source {source!r} changed the {kind} of contact "
                f"{own.contact_id!r} from {value!r} to {new!r}; forget_key({claim.key!r}) to "
                "accept it"
            )
        return (
            f"identity conflict: source {source!r} gives contact {own.contact_id!r} the {kind} "
            f"{new!r}, but its {kind} is {value!r} (claimed by source {claim.source!r}); not "
            f"overwritten: fix one source, or forget_key({claim.key!r}) to accept it"
        )
    return None


def _renamed(contact: Contact, canonical: str) -> Contact:
    # Only the fields the source gave: the rest of the stored contact stays as it is.
    fields = {name: getattr(contact, name) for name in contact.given}
    return Contact(**(fields | {"id": canonical}))


def _pointed(event: Event, source: str, found: Mapping[str, Claim]) -> Event:
    if not event.contact_id:
        return event
    claim = found.get(own_key(source, event.contact_id))
    if claim is None or claim.contact_id == event.contact_id:
        return event
    return attrs.evolve(event, contact_id=claim.contact_id)


def claim(store: Store, resolved: Resolved, *, at: datetime) -> None:
    """Claim the page's new keys, once its records are stored (a crash between the two
    leaves keys unclaimed, and the next sync of the page claims them)."""
    claim_keys(store, resolved.claims, at=at)
