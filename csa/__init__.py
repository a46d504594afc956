"""Customer Success Automation: from a SaaS company's exports to churn and expansion scores."""

__version__ = "0.1.0"
