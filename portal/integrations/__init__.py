"""Drivers to the outside world, below the domain: they read and write the model, never a
request. `webhooks`: signing and sending the events of the outbox."""
