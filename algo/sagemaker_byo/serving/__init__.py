"""Serving (`docker run IMAGE serve`): the supervisor that runs nginx and gunicorn, the Flask
app around the four hooks, the request pipeline, content negotiation and codecs, large bodies
in chunks; multi-model endpoints in multimodel/. Never imports training/."""
