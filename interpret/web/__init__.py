"""Web form, JSON API and CDS Hooks service (FastAPI)."""
