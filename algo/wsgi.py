"""What gunicorn loads (`wsgi:app`): the app built in predictor.py. Nothing else belongs here."""

from sagemaker_byo.serving.app import import_app

app = import_app("predictor")
