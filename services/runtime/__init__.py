"""Plumbing shared by the services: settings, database, inbox/outbox, broker, dead letters."""
