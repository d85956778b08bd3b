"""The statements the engine's trackers and the CLI's views ask the store, one module per
thing they read or write.

* :mod:`~onetomany.store.queries.schedules`: cadence schedules (``schedules``);
* :mod:`~onetomany.store.queries.journeys`: journey states and history;
* :mod:`~onetomany.store.queries.segment_members`: the stored members of watched segments;
* :mod:`~onetomany.store.queries.outbox`: questions about queued and sent rows (re-entry,
  escalation ladders, explanations);
* :mod:`~onetomany.store.queries.events`: questions about the event log (engagement,
  activity recaps, explanations);
* :mod:`~onetomany.store.queries.contacts`: contacts by account and accounts by contact;
* :mod:`~onetomany.store.queries.rulings`: claimed rows a send policy skipped or deferred.
* :mod:`~onetomany.store.queries.inbox`: a contact's in-app messages, their counts, and the
  contact's changes to them (read, seen, archived, snoozed).

Each function takes the :class:`~onetomany.store.Store` and answers one question, or makes
one write in one transaction; what to ask, and what an answer means, stays with the caller
(``tracking/``, ``cli/``). Nothing outside the store builds SQL (docs/architecture.md).
"""
