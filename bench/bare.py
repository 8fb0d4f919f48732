"""The baseline of the ingest benchmark: a bare Flask JSON endpoint at the bridge's URL, served
by the same gunicorn settings. It parses the body and answers 202, nothing else."""

from flask import Flask, jsonify, request

app = Flask(__name__)
app.extensions["bench_bare"] = True  # gunicorn.conf.py's hooks leave this app alone


@app.post("/hooks/<name>")
def receive(name: str):
    body = request.get_json(force=True)
    return jsonify({"source": name, "received": 1 if isinstance(body, dict) else 0}), 202


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
