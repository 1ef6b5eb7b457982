"""Local web app and HTTP API over one :class:`bgmatting.engine.predictor.Predictor`.

``create_app`` (app.py) wires the pieces: settings.py (limits and folders), worker.py (the one model, one call
at a time, bounded queue), uploads.py (decoding untrusted images), batch_inputs.py (confined folders and zip
archives), storage.py (results under server-generated names, history), jobs.py (batch progress), and the
static page in ``static/``. ``tools/serve.py`` is the command line.
"""
