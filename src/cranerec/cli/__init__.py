"""The ``cranerec`` command line.

cranerec train [--data PATH] [--model NAME] [--preset NAME] [--config FILE.yaml]
               [--set key=value ...] [--seed N | --seeds N ...] [--out DIR]
               [--device cpu|cuda] [--threads N] [--epochs N] [--resume RUN_DIR] [--format FMT]
cranerec evaluate RUN_DIR [--split test]
cranerec data describe PATH
cranerec data convert SRC DST --to mmrec|matrices
cranerec data build INTERACTIONS [--items ITEMS --text-cols COLS | --image-col COL] --out DIR
cranerec features text ITEMS --id-col COL --text-cols COLS --out DIR [--data PATH] [--model DIR]
                     [--overwrite]
cranerec features image ITEMS --id-col COL --image-col COL --model DIR --out DIR [--data PATH] [--overwrite]
cranerec models
cranerec recommend RUN_DIR [--users all|FILE] [--k 20] --out recs.parquet|recs.csv
cranerec serve RUN_DIR [--host 127.0.0.1] [--port 8000]
cranerec experiment SPEC.yaml|SUITE [--smoke] [--store DIR] [--workers N] [--device cuda] [--status]
                    [--adopt RUN_DIR...] [--retry-failed] [--storage URL]
cranerec report RESULTS [--out FILE.md] [--storage URL]

Each command lives in its own module with its parser (``add_parsers``) beside its handler
(``_cmd_*``); ``entry`` assembles them. Commands import their heavy dependencies when run, so
``cranerec --help`` loads no torch.
"""

from cranerec.cli.entry import _split_set_pairs, build_parser, main
from cranerec.cli.output import SYNTHETIC_BANNER

__all__ = ["SYNTHETIC_BANNER", "_split_set_pairs", "build_parser", "main"]
