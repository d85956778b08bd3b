"""HubSpot records into the program's accounts and contacts: pure functions, no I/O.

- A company is an account: its id is the company's ``account_property`` (else the HubSpot
  company id), its name the company's ``name``, its traits the ``company_traits`` properties,
  ``hubspot_company_id``, and the owner's email under ``owner_trait`` (the account's CSM).
- A contact is a contact: id ``hubspot-<id>``, email, first and last name, phone, the
  ``contact_traits`` properties, its role from ``role_property`` through ``roles``, and its
  account from its company association.
- A contact in several companies takes the association HubSpot labels *Primary*
  (``two_companies = "primary"``); with no primary one among them, or with
  ``two_companies = "skip"``, the contact is skipped with a reason naming the companies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from onetomany.model import Account, Contact
from onetomany_hubspot.options import HubSpotOptions

#: HubSpot's association type id for a contact's primary company.
PRIMARY_COMPANY: Final = 1


class Unmapped(Exception):
    """A HubSpot record the program cannot use; the message says why."""


@attrs.frozen(kw_only=True)
class Association:
    """One company a contact is associated with, and whether it is the primary one."""

    company: str
    primary: bool


def properties(record: Mapping[str, Any]) -> Mapping[str, Any]:
    found = record.get("properties")
    return found if isinstance(found, Mapping) else {}


def company_account(
    company: Mapping[str, Any], options: HubSpotOptions, owners: Mapping[str, str]
) -> Account:
    props = properties(company)
    traits: dict[str, Any] = {"hubspot_company_id": str(company["id"])}
    for name in options.company_traits:
        if props.get(name) not in (None, ""):
            traits[name] = props[name]
    owner = props.get("hubspot_owner_id")
    if owner:
        email = owners.get(str(owner))
        if email is None:
            raise Unmapped(
                f"its owner {owner} is not among the owners the token can read (an archived "
                "or deleted user?); reassign the company or grant crm.objects.owners.read"
            )
        traits[options.owner_trait] = email
        traits["hubspot_owner_id"] = str(owner)
    return Account(
        id=company_account_id(company, options), name=str(props.get("name") or ""), traits=traits
    )


def company_account_id(company: Mapping[str, Any], options: HubSpotOptions) -> str:
    if not options.account_property:
        return str(company["id"])
    value = properties(company).get(options.account_property)
    if value in (None, ""):
        raise Unmapped(
            f"has no {options.account_property!r} property to name its account; set it in "
            "HubSpot or leave account_property unset to use the company id"
        )
    return str(value)


def chosen_company(associations: Sequence[Association], options: HubSpotOptions) -> str | None:
    """The company a contact belongs to, by the documented rule; Unmapped when none fits."""
    companies = sorted({a.company for a in associations})
    if len(companies) <= 1:
        return companies[0] if companies else None
    shown = ", ".join(companies)
    if options.two_companies == "skip":
        raise Unmapped(f"is associated with {len(companies)} companies ({shown})")
    primary = sorted({a.company for a in associations if a.primary})
    if len(primary) != 1:
        raise Unmapped(
            f"is associated with {len(companies)} companies ({shown}) and "
            f"{'none' if not primary else 'several'} of them is labelled primary"
        )
    return primary[0]


def contact_value(
    contact: Mapping[str, Any], account: str | None, options: HubSpotOptions
) -> Contact:
    props = properties(contact)
    name = " ".join(str(props[k]) for k in ("firstname", "lastname") if props.get(k))
    traits: dict[str, Any] = {"hubspot_contact_id": str(contact["id"])}
    for key in options.contact_traits:
        if props.get(key) not in (None, ""):
            traits[key] = props[key]
    fields: dict[str, Any] = {
        "id": f"hubspot-{contact['id']}",
        "account_id": account,
        "name": name,
        "email": props.get("email") or None,
        "role": _role(props.get(options.role_property), options),
        "traits": traits,
    }
    if props.get("phone"):
        fields["phone"] = props["phone"]
    return Contact(**fields)


def _role(value: Any, options: HubSpotOptions) -> str | None:
    if value in (None, ""):
        return None
    if not options.roles:
        return str(value)
    if str(value) not in options.roles:
        raise Unmapped(
            f"its {options.role_property} {value!r} is not in the roles table "
            f"({', '.join(sorted(options.roles))}); add it"
        )
    return options.roles[str(value)]
