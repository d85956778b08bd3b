"""The rules layer: segments, journeys, triggers, tiers and capacity, as pure values and
functions. Rules import the model and each other, never the store, the engine or the CLI."""
