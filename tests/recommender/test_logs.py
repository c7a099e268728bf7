"""Log output: readable text by default, JSON lines with RECOMMENDER_LOG_FORMAT=json, uvicorn's lines alike."""

import io
import json
import logging
import logging.config

from recommender.logs import JsonLines, log_config


def test_json_lines_carry_the_access_fields_and_the_traceback():
    record = logging.LogRecord("recommender.access", logging.INFO, __file__, 1, "%s %s", ("GET", "/x"), None)
    record.__dict__.update(method="GET", path="/x", status=200, duration_ms=0.12, request_id="r1")
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "GET /x" and line["level"] == "INFO" and line["logger"] == "recommender.access"
    assert (line["method"], line["path"], line["status"], line["duration_ms"], line["request_id"]) == \
        ("GET", "/x", 200, 0.12, "r1")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("recommender", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonLines().format(failed))["exception"]


def test_the_config_sends_ours_and_uvicorns_through_one_format(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        logging.config.dictConfig(log_config("json"))
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("recommender.service").info("serving %d articles", 3)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(x["logger"], x["message"]) for x in lines] == [("uvicorn.error", "Started server process"),
                                                                ("recommender.service", "serving 3 articles")]
        logging.config.dictConfig(log_config("text"))
        logging.getLogger("recommender").info("plain")
        assert stream.getvalue().splitlines()[-1].endswith("INFO recommender: plain")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": []}})
