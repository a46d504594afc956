"""A tiny company in the five export formats, written by hand so each test knows every row."""

from __future__ import annotations

import json
from pathlib import Path

ACCOUNTS_CSV = """\
Account ID,Account Name,Industry,Billing Country,Company Size,Plan,Billing Period,Seats,Price Per Seat,Contract Start Date,Renewal Date,Account Owner,Account Status,Churn Date,Created Date,Last Modified Date
ACC-1,Acme,Software,US,1-50,Growth,Monthly,10,40.0,2024-01-05,2024-02-05,Dana Lee,Active,,2024-01-05T09:00:00Z,2024-03-01T09:00:00Z
ACC-2,Globex,Retail,DE,51-200,Enterprise,Annual,50,70.0,2024-01-10,2025-01-10,Sam Ortiz,Churned,2024-06-01,2024-01-10T09:00:00Z,2024-06-01T09:00:00Z
ACC-3,Initech,Finance,GB,201-1000,Starter,Monthly,5,20.0,2024-02-01,2024-03-01,Dana Lee,Active,,2024-02-01T09:00:00Z,2024-02-01T09:00:00Z
"""

CONTACTS_CSV = """\
Contact ID,Account ID,First Name,Last Name,Email,Title,Primary Contact,Created Date,Last Modified Date
C-1,ACC-1,Ana,Diaz,ana@acme.example,CTO,true,2024-01-05T09:00:00Z,2024-01-05T09:00:00Z
C-2,ACC-2,Bo,Berg,bo@globex.example,,false,2024-01-10T09:00:00Z,2024-01-10T09:00:00Z
"""

SUBSCRIPTIONS_CSV = """\
change_id,subscription_id,customer_id,change_type,plan,interval,quantity,unit_amount,mrr,previous_mrr,effective_at,current_period_end,status
CH-1,SUB-1,ACC-1,new,growth,month,10,40.0,400.0,0,2024-01-05T09:00:00Z,2024-02-05T09:00:00Z,active
CH-2,SUB-2,ACC-2,new,enterprise,year,50,70.0,3500.0,0,2024-01-10T09:00:00Z,2025-01-10T09:00:00Z,active
CH-3,SUB-2,ACC-2,cancellation,enterprise,year,50,70.0,0,3500.0,2024-06-01T09:00:00Z,,canceled
"""

INVOICES_CSV = """\
payment_id,invoice_id,customer_id,subscription_id,created,amount,currency,status,failure_code
PAY-1,INV-1,ACC-1,SUB-1,2024-01-05T09:00:00Z,400.0,usd,succeeded,
PAY-2,INV-2,ACC-1,SUB-1,2024-02-05T09:00:00Z,400.0,usd,failed,card_declined
PAY-3,INV-2,ACC-1,SUB-1,2024-02-08T09:00:00Z,400.0,usd,succeeded,
"""

NPS_CSV = """\
Response ID,Account ID,Respondent Email,Score,Comment,Submitted At
R-1,ACC-1,ana@acme.example,9,Great coffee and fast shipping.,2024-03-01T10:00:00Z
R-2,ACC-2,bo@globex.example,3,,2024-04-01T10:00:00Z
"""

TICKETS = {
    "tickets": [
        {
            "id": 101,
            "organization_id": "ACC-1",
            "requester": {"email": "ana@acme.example"},
            "subject": "The taste is off",
            "description": "The last box tasted stale and the packaging was torn.",
            "priority": "high",
            "via": {"channel": "email"},
            "status": "solved",
            "created_at": "2024-02-01T10:00:00Z",
            "updated_at": "2024-02-02T12:00:00Z",
            "solved_at": "2024-02-02T10:00:00Z",
        },
        {
            "id": 102,
            "organization_id": "ACC-2",
            "requester": {"email": "bo@globex.example"},
            "subject": "Where is my order",
            "description": "Ordered two weeks ago and nothing arrived yet.",
            "priority": "normal",
            "via": {"channel": "web"},
            "status": "open",
            "created_at": "2024-03-01T10:00:00Z",
            "updated_at": "2024-03-01T10:00:00Z",
            "solved_at": None,
        },
    ]
}


def usage_line(
    message_id: str,
    account: str = "ACC-1",
    event: str = "Logged In",
    timestamp: str = "2024-03-01T10:00:00Z",
    count: int = 1,
) -> str:
    return json.dumps(
        {
            "messageId": message_id,
            "type": "track",
            "event": event,
            "userId": "USR-1",
            "timestamp": timestamp,
            "context": {"groupId": account},
            "properties": {"count": count},
        }
    )


def write_company(raw: Path) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "crm_accounts.csv").write_text(ACCOUNTS_CSV)
    (raw / "crm_contacts.csv").write_text(CONTACTS_CSV)
    (raw / "billing_subscriptions.csv").write_text(SUBSCRIPTIONS_CSV)
    (raw / "billing_invoices.csv").write_text(INVOICES_CSV)
    (raw / "nps_responses.csv").write_text(NPS_CSV)
    (raw / "support_tickets.json").write_text(json.dumps(TICKETS))
    lines = [
        usage_line("m-1"),
        usage_line("m-2", event="Report Created", count=3),
        usage_line("m-3", account="ACC-2", event="API Call Made", count=40),
    ]
    (raw / "usage_events_2024-03.jsonl").write_text("\n".join(lines) + "\n")
    return raw
