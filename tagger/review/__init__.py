"""Review: a local web app where people check tags fast, and an event store that turns their corrections into
the next run's example pool, an eval's gold and a report of what reviewers changed.

The web app needs the `review` extra (FastAPI, uvicorn); the store, export and feedback import need nothing beyond
tagger itself.
"""
