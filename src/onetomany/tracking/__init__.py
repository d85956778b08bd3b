"""What the engine keeps per recipient between rounds, in the store: cadence schedules,
engagement, journey stages, segment membership and re-entry. Each module applies a rule from
:mod:`onetomany.rules` to stored state; the engine calls them every round."""
