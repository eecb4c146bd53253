"""The report's sections, one module each: ``TITLE``, a pure ``body(...)`` over analysis
frames (tested directly), and ``SECTION``, the ``Section`` that renders it from a
``ReportContext``. The page's order is ``harness.report.registry.SECTIONS``."""
