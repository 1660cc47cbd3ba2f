"""The prediction service a Bento runs: release manifest, scorer, online read, prediction log.

Light by design: nothing here imports the CLI, training code, MLflow or the platform's settings.
:mod:`modelops.serving.service` is the BentoML module (``bentoml serve``); the other modules are
plain Python that the platform also uses (the manifest schema when packaging, the prediction
log reader for monitoring). Environment variables named ``MODELOPS_SERVING_*`` configure a
running service (see :mod:`modelops.serving.config`).
"""
