"""What gunicorn loads (`wsgi:app`): the app built in predictor.py. Nothing else belongs here."""

from predictor import app  # noqa: F401
