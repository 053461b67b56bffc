"""The HTML report in a real browser: Debian's headless Chromium renders the report of a change
driven through sopctl (real stage runs), with every host name resolving to nothing so any
network fetch would fail. Checks the rendered DOM (sections, filled tables, no external URL) and
saves a screenshot in the test's tmp dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.integration.test_report_archive import CID, drive_change, ok

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not shutil.which("chromium") and not __import__("os").path.exists(CHROMIUM),
                                    reason="Debian chromium is not installed (the project's set-up installs it)")
pytestmark = needs_chromium
SECTIONS = ("summary", "timeline", "hosts", "approvals", "backup", "artifacts", "tests", "monitoring", "evaluation",
            "compliance", "audit")


def chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.urls, self.tables, self.rows, self.h2 = set(), [], 0, 0, []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for k in ("src", "href", "action", "poster", "data"):
            if a.get(k):
                self.urls.append(a[k])
        self.tables += tag == "table"
        self.rows += tag == "tr"
        self._in_h2 = tag == "h2"
        if tag == "h2":
            self.h2.append("")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def rendered_report(tmp_path, uri):
    """The report's DOM after headless Chromium rendered it, checked to have every section."""
    dom = chromium(tmp_path, "--dump-dom", uri)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = Collect()
    parsed.feed(dom.stdout)
    for section in SECTIONS:
        assert section in parsed.ids, section
    return dom, parsed


@pytest.mark.parametrize("lang", ["id"])
def test_report_renders_in_headless_chromium(tmp_path, lang):
    (tmp_path / "w").mkdir()
    world = drive_change(tmp_path / "w")
    page = tmp_path / f"report.{lang}.html"
    ok(world.sopctl(None, "report", CID, "--format", "html", "--lang", lang, "--output", str(page)))
    source = page.read_text()
    assert not re.search(r"(?i)(src|href)\s*=\s*[\"']?\s*(https?:)?//", source)
    assert not re.search(r"(?i)url\(|@import", source)

    dom, parsed = rendered_report(tmp_path, page.as_uri())
    assert [h.split(".")[0] for h in parsed.h2] == [str(i) for i in range(1, 12)]
    assert "Evaluasi" in dom.stdout and "Kepatuhan" in dom.stdout and "tidak tersedia" in dom.stdout
    assert parsed.tables >= 10 and parsed.rows >= 60
    assert not [u for u in parsed.urls if re.match(r"(?i)\s*(https?:)?//", u)], parsed.urls
    # tables really filled: every approver and host of the change appears in the rendered page
    for text in ("sari", "dewi", "agus", "rina", "prd-local-1", "prd-local-2", "SoD-1", "A.8.13", "sah"):
        assert text in dom.stdout, text

    shot = tmp_path / f"report.{lang}.png"
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars",
                    page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    print(f"screenshot: {shot}")
