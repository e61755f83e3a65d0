"""`fnlocal serve` in the repository root, with no flags but a free port, serves the app end to end."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.fnlocal_helpers import REPO, wait_for

pytestmark = pytest.mark.integration
FNLOCAL_BIN = Path(sys.executable).parent / "fnlocal"


def _jpeg() -> bytes:
    from skimage import data  # the dev venv's sample photos

    out = io.BytesIO()
    Image.fromarray(data.chelsea()).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_upload_to_classify_works_out_of_the_box(model_dir: Path, tmp_path: Path) -> None:
    # No --config PREDICT_URL: fnlocal.yaml points preprocess at fnlocal's own predict trigger.
    # The deps cache is the default one (<repo>/.local/fnlocal/deps), shared with the other tests.
    err = tmp_path / "stderr.log"
    with open(err, "w") as sink:
        proc = subprocess.Popen([str(FNLOCAL_BIN), "serve", "--port", "0"], cwd=REPO, stderr=sink,
                                stdout=subprocess.DEVNULL)
    try:
        url = wait_for(lambda: (m := re.search(r"on (http://\S+)", err.read_text())) and m.group(1), timeout=120)
        resp = httpx.post(f"{url}/t/vision/classify", files={"image": ("cat.jpg", _jpeg(), "image/jpeg")},
                          timeout=60)
        assert resp.status_code == 200, resp.text
        (item,) = resp.json()["predictions"]
        assert item["status"] == "ok" and item["upload"] == "cat.jpg"
        assert item["top_k"][0]["label"] in {"tiger cat", "tabby", "Egyptian cat"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "predict_unavailable" not in err.read_text()
