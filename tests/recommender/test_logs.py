"""Log output: readable text by default, JSON lines with RECOMMENDER_LOG_FORMAT=json, uvicorn's lines alike."""

import io
import json
import logging
import logging.config

from recommender.logs import JsonLines, log_config


def test_json_lines_carry_time_level_logger_process_message_and_the_traceback():
    record = logging.LogRecord("recommender.service", logging.INFO, __file__, 1, "serving %d", (3,), None)
    line = json.loads(JsonLines().format(record))
    assert (line["message"], line["level"], line["logger"]) == ("serving 3", "INFO", "recommender.service")
    assert line["process"] == record.process and line["time"]
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
