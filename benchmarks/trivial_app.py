"""The reference for bench_serving.py: a Flask app that answers every request with a constant."""

from flask import Flask, Response, request

app = Flask("trivial")
BODY = b'{"predictions": [{"closest_cluster": 1.0, "distance_to_cluster": 3.0}]}'


@app.get("/ping")
def ping():
    return Response(status=200)


@app.post("/invocations")
def invocations():
    request.get_data()  # the body is read, as any server must (a multi-record body would break the connection)
    return Response(BODY, mimetype="application/json")
