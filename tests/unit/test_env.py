"""One set of rules for settings read from the environment (fnvision_common.env), used by both functions."""

from __future__ import annotations

import pytest
from fnvision_common.env import SettingError, env_bool, env_float, env_int, log_level, results_location
from predict_core.errors import ConfigError as PredictConfigError
from predict_core.settings import Settings as PredictSettings
from preprocess_core.errors import ConfigError as PreprocessConfigError
from preprocess_core.settings import Settings as PreprocessSettings


def test_helpers() -> None:
    assert env_int({"N": " 7 "}, "N", 1) == 7 and env_int({}, "N", 3) == 3
    assert env_float({"F": "0"}, "F", 1.0, low=0.0) == 0.0 and env_bool({"B": "Yes"}, "B", False) is True
    assert log_level({"LOG_LEVEL": "warn"}) == "WARNING" and log_level({}) == "INFO"
    assert results_location({"RESULTS_BUCKET": " ", "RESULTS_PREFIX": " v1/ "}) == ("results", "v1/")
    for call in (lambda: env_int({"N": "x"}, "N", 1), lambda: env_int({"N": "0"}, "N", 1, 1, 5),
                 lambda: env_float({"F": "nan"}, "F", 1.0), lambda: env_float({"F": "0"}, "F", 1.0),
                 lambda: env_bool({"B": "maybe"}, "B", True), lambda: log_level({"LOG_LEVEL": "LOUD"})):
        with pytest.raises(SettingError):
            call()


@pytest.mark.parametrize(("env", "ok"), [
    ({"LOG_LEVEL": "WARN"}, True), ({"LOG_LEVEL": "loud"}, False),
    ({"TOP_K": "1000"}, True), ({"TOP_K": "1001"}, False), ({"TOP_K": "0"}, False),
    ({"RESULTS_BUCKET": "", "RESULTS_PREFIX": "p/"}, True),
])
def test_both_functions_read_the_same_keys_the_same_way(env: dict[str, str], ok: bool) -> None:
    outcomes = []
    readers = ((lambda e: PredictSettings.from_env(e, "/m"), PredictConfigError),
               (lambda e: PreprocessSettings.from_env({**e, "MODEL_INPUT_SIZE": "224"}), PreprocessConfigError))
    for read, error in readers:
        try:
            settings = read(env)
        except error:
            outcomes.append(None)
        else:
            outcomes.append((settings.log_level, settings.top_k, settings.results_bucket, settings.results_prefix))
    assert outcomes[0] == outcomes[1] and (outcomes[0] is not None) == ok
