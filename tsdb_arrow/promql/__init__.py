"""PromQL over the database: parsing (``promql-parser``), vectorised evaluation, the
conformance runner. Importing this package stays light; the evaluator loads on first query."""
