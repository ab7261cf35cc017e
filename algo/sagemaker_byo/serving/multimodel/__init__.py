"""Multi-model endpoints: the registry of loaded models shared by every worker (registry.py)
and the /models routes of the app (routes.py)."""
