"""The EN 303 645 §5.3 evidence report in the ETSI TS 103 701 shape (`otakit compliance
report`).

- `provisions`: the ICS and each provision's test cases (conceptual / functional), with the
  tests that show them and what the manufacturer must supply where the verdict is theirs;
- `attacks`: the devised-attack table of 5.3-2-2 and 5.3-9-1;
- `evidence`: the evidence record (date, commit, versions, target), the pytest run with its
  run record, and whether a results file is traceable to it;
- `verdicts`: PASS / FAIL / N/A / INCONCLUSIVE / UNVERIFIED per test case and provision;
- `report` and `render`: the report as markdown, HTML, JSON and PDF.
The IXIT drafts come from `otakit.ixit`.
"""

from otakit.compliance.evidence import Results, facts, read_junit, run_tests, verify_results
from otakit.compliance.report import write
from otakit.compliance.verdicts import (
    FAIL,
    INCONCLUSIVE,
    NA,
    PASS,
    UNVERIFIED,
    evaluate,
    mapped_tests,
)

__all__ = ["FAIL", "INCONCLUSIVE", "NA", "PASS", "UNVERIFIED", "Results", "evaluate", "facts",
           "mapped_tests", "read_junit", "run_tests", "verify_results", "write"]
