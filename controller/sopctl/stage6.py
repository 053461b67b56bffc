"""Stage 6 (Tahap 6, documentation and evaluation): what runs when the IT manager's closing approval is in.

:data:`CLOSE_HOOKS` is the standard list the engine is built with (:class:`sopctl.engine.Engine`,
``close_hooks``): write the reports (``<change>/reports/``) and the signed audit archive
(``<change>/archive/``) before the change is marked closed. A hook is ``hook(engine, change)``.
"""

from __future__ import annotations

import hashlib
from typing import Any


def close_hook(engine: Any, change: dict[str, Any]) -> None:
    """Stage 6: write the reports and the archive before the change is marked closed (its name is
    recorded in the audit log's ``change_closed`` record: keep it)."""
    from . import report as rp
    from .archive import build_archive

    cid = change["id"]
    data = rp.collect(engine, cid)
    data["change"]["state"] = "closed"
    out = engine.store.change_dir(cid) / "reports"
    paths = rp.report_files(engine, cid, out, data)
    engine.log(cid).record("stage6_reports", files=[p.name for p in paths],
                           sha256={p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
    res = build_archive(engine, cid, reports={p.name: p.read_bytes() for p in paths})
    record_archive(engine, cid, res)
    engine.say(f"{cid}: report {out} and archive {res['path']} written (verify with: sopctl audit verify "
               f"{res['path']} --public-key {res['public_key']})")


def record_archive(engine: Any, change_id: str, res: dict[str, Any]) -> None:
    """The ``archive_written`` record of the change's audit log."""
    engine.log(change_id).record("archive_written", path=res["path"], sha256=res["sha256"],
                                 manifest_sha256=res["manifest_sha256"], files=res["files"], key_id=res["key_id"],
                                 retention=res["retention"], keep_until=res["keep_until"])


#: the standard stage 6 hooks, in order
CLOSE_HOOKS = (close_hook,)
