"""Convert the upstream layout (CoNLL txt folder + Pascal-VOC xml folder) to the shipped compact one.

`gemner data convert --txt DIR [--xml DIR] --out DIR` writes `{train,dev,test}.txt.gz` (the txt files
byte for byte, gzipped) and `boxes.jsonl.gz` (every xml file as one JSON line, see `voc.py`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from .benchmarks import SPLITS
from .issues import DataError, IssueLog
from .voc import read_voc_folder, write_boxes_jsonl


def convert_upstream(txt_dir: str | Path, out_dir: str | Path, xml_dir: str | Path | None = None,
                     strict: bool = True) -> IssueLog:
    txt_dir, out_dir = Path(txt_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = IssueLog(strict=strict)
    for split in SPLITS:
        source = txt_dir / f"{split}.txt"
        if not source.is_file():
            raise DataError(f"{source}: missing split file")
        # mtime=0 makes the output reproducible byte for byte.
        with gzip.GzipFile(out_dir / f"{split}.txt.gz", "wb", mtime=0) as out:
            out.write(source.read_bytes())
    if xml_dir is not None:
        annotations = read_voc_folder(xml_dir, log)
        write_boxes_jsonl(out_dir / "boxes.jsonl.gz", (annotations[k] for k in sorted(annotations)))
    return log
