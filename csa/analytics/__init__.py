"""Customer analytics: cohorts, revenue retention, segments, time to churn, revenue at risk.

Public surface: the revenue ledger (``lake_ledger``, ``transaction_ledger``,
``read_transactions``), cohort tables (``cohort_tables``), MRR movements and retention
(``mrr_movements``, ``period_retention``, ``cohort_revenue_retention``), segments
(``account_behaviour``, ``customer_behaviour``, ``segment_accounts``, ``write_segments``,
``read_segments``), the survival model (``fit_survival``, ``concordance_index``), the forecast
(``forecast_quarter``, ``backtest``) and the report (``AnalyticsContext``, ``run_part``,
``build_report``).
"""

from csa.analytics.cohorts import CohortTables, cohort_tables, pooled_curves
from csa.analytics.forecast import Forecast, backtest, forecast_quarter
from csa.analytics.ledger import (
    RevenueLedger,
    lake_ledger,
    mrr_as_of,
    read_transactions,
    transaction_ledger,
)
from csa.analytics.report import (
    PARTS,
    AnalysisPart,
    AnalyticsContext,
    TransactionTable,
    build_report,
    run_part,
)
from csa.analytics.revenue import (
    MOVEMENTS,
    cohort_revenue_retention,
    mrr_movements,
    period_retention,
)
from csa.analytics.segments import (
    SEGMENTS_FILE,
    Segmentation,
    account_behaviour,
    customer_behaviour,
    read_segments,
    segment_accounts,
    write_segments,
)
from csa.analytics.survival import SurvivalResult, concordance_index, fit_survival

__all__ = [
    "MOVEMENTS",
    "PARTS",
    "SEGMENTS_FILE",
    "AnalysisPart",
    "AnalyticsContext",
    "CohortTables",
    "Forecast",
    "RevenueLedger",
    "Segmentation",
    "SurvivalResult",
    "TransactionTable",
    "account_behaviour",
    "backtest",
    "build_report",
    "cohort_revenue_retention",
    "cohort_tables",
    "concordance_index",
    "customer_behaviour",
    "fit_survival",
    "forecast_quarter",
    "lake_ledger",
    "mrr_as_of",
    "mrr_movements",
    "period_retention",
    "pooled_curves",
    "read_segments",
    "read_transactions",
    "run_part",
    "segment_accounts",
    "transaction_ledger",
    "write_segments",
]
